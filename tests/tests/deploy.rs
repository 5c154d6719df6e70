//! The deployment files a user copies, checked without Docker or a cluster: each parses, the spec it
//! mounts passes `sliq validate` with the environment it gives sliq, and everything that spec names
//! (brokers, the collector, their ports, the archive and state folders) exists in the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("expected a scalar, found {other:?}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|items| items.iter().map(text).collect())
        .unwrap_or_default()
}

/// `host:port` of a broker entry or an endpoint URL.
fn host_port(address: &str) -> (String, u16) {
    let rest = address.split_once("://").map_or(address, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{address} has no port"));
    (host.to_owned(), port.parse().expect("a port number"))
}

/// The value after `flag` in an argument list.
fn flag_value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Whether `path` lies inside one of the mounted container folders.
fn is_mounted(path: &Path, mounts: &[String]) -> bool {
    mounts.iter().any(|m| path.starts_with(m))
}

/// Runs `sliq validate` on `spec` with exactly `env` (nothing inherited), and parses the spec the
/// same way for the values the checks need.
fn validated(spec: &Path, env: &BTreeMap<String, String>) -> sliq_config::PipelineSpec {
    let out = std::process::Command::new(sliq_tests::sliq_binary())
        .args(["validate", "--config"])
        .arg(spec)
        .env_clear()
        .envs(env)
        .output()
        .expect("sliq runs");
    assert!(
        out.status.success(),
        "sliq validate refused {} with the deployment's environment: {}",
        spec.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(spec).expect("spec");
    sliq_config::parse(&text, &spec.display().to_string(), |k| env.get(k).cloned())
        .expect("the spec parses as validate said")
}

/// The workspace's minimum Rust version (`rust-version = "1.89"`).
fn workspace_rust_version() -> (u32, u32) {
    let cargo = std::fs::read_to_string(sliq_tests::repo_root().join("Cargo.toml")).expect("Cargo");
    let line = cargo
        .lines()
        .find(|l| l.trim_start().starts_with("rust-version"))
        .expect("rust-version in Cargo.toml");
    version(line.split('"').nth(1).expect("quoted version"))
}

fn version(text: &str) -> (u32, u32) {
    let mut parts = text
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
fn compose_names_only_services_and_ports_it_has() {
    let root = sliq_tests::repo_root();
    let compose = read_yaml(&root.join("docker-compose.yml"));
    let services = compose["services"].as_mapping().expect("services");
    let service = |name: &str| -> &Value {
        services
            .get(name)
            .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
    };
    let sliq = service("sliq");
    for dependency in strings(&sliq["depends_on"]) {
        service(&dependency);
    }

    // The spec the sliq service runs, found through its volume mounts.
    let command = strings(&sliq["command"]);
    let config = flag_value(&command, "--config").expect("the sliq service runs --config");
    let mut mounts = Vec::new();
    let mut spec_on_host = None;
    for volume in strings(&sliq["volumes"]) {
        let mut parts = volume.split(':');
        let (host, container) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if let Ok(inside) = Path::new(&config).strip_prefix(container) {
            spec_on_host = Some(root.join(host).join(inside));
        }
        mounts.push(container.to_owned());
    }
    let spec_on_host: PathBuf = spec_on_host.expect("the spec comes from a mounted folder");
    let env: BTreeMap<String, String> = sliq["environment"]
        .as_mapping()
        .expect("environment")
        .iter()
        .map(|(k, v)| (text(k), text(v)))
        .collect();
    let spec = validated(&spec_on_host, &env);

    for broker in spec.source.kafka.brokers.split(',') {
        let (host, port) = host_port(broker);
        let listeners = text(&service(&host)["environment"]["KAFKA_LISTENERS"]);
        assert!(
            listeners
                .split(',')
                .any(|l| l.starts_with("PLAINTEXT:") && l.ends_with(&format!(":{port}"))),
            "the spec reads Kafka at {broker}; {host} listens on {listeners}"
        );
    }

    let otlp = spec
        .export
        .otlp
        .resolve(|k| env.get(k).cloned())
        .expect("the OTLP settings resolve");
    let (host, port) = host_port(&otlp.endpoint.value);
    service(&host);
    let collector_config: Value =
        serde_yaml_ng::from_str(&text(&compose["configs"]["otelcol"]["content"]))
            .expect("the collector's config parses");
    let protocol = match otlp.protocol {
        sliq_config::Protocol::Grpc => "grpc",
        sliq_config::Protocol::HttpProtobuf => "http",
        sliq_config::Protocol::File => panic!("a compose stack exports to the collector"),
    };
    let receiver = text(&collector_config["receivers"]["otlp"]["protocols"][protocol]["endpoint"]);
    assert_eq!(
        host_port(&receiver).1,
        port,
        "sliq exports {protocol} to port {port}; the collector's {protocol} receiver is at {receiver}"
    );
    let pipeline = &collector_config["service"]["pipelines"]["metrics"];
    assert!(strings(&pipeline["receivers"]).contains(&"otlp".to_owned()));

    for (key, dir) in [
        ("archive.dir", &spec.archive.dir),
        ("state.dir", &spec.state.dir),
    ] {
        assert!(
            is_mounted(dir, &mounts),
            "{key} is {} in the container, outside every volume ({}): it would be lost with the container",
            dir.display(),
            mounts.join(", ")
        );
    }

    // The image builds with a Rust at least as new as the workspace needs.
    let dockerfile = text(&sliq["build"]["dockerfile_inline"]);
    let from = dockerfile
        .lines()
        .find_map(|l| l.trim().strip_prefix("FROM rust:"))
        .expect("a rust build stage");
    let (major, minor) = workspace_rust_version();
    assert!(
        version(from) >= (major, minor),
        "the image builds with rust:{from}, the workspace needs {major}.{minor}"
    );
}

/// The documents of a multi-document YAML file.
fn read_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split("\n---\n")
        .map(|document| {
            serde_yaml_ng::from_str(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

/// The readers' StatefulSet and the ledger's Deployment, each checked as one pod: the spec it
/// mounts validates with the environment it gives, probes reach `--admin-listen`, what the spec
/// writes is on a volume, a stop has time to finish; and each runs its role.
#[test]
fn readers_and_ledger_probes_volumes_and_environment_fit_the_spec_they_mount() {
    let documents = read_documents(&sliq_tests::repo_root().join("deploy/kubernetes/sliq.yaml"));
    let service = kind(&documents, "Service");
    let set = kind(&documents, "StatefulSet");
    let ledger = kind(&documents, "Deployment");

    // The reader pods are the service's, and the set names it.
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
    for (key, value) in service["spec"]["selector"].as_mapping().expect("selector") {
        assert_eq!(&set["spec"]["template"]["metadata"]["labels"][key], value);
    }
    // Readers keep their archive and checkpoints on a claim of their own; the ledger keeps its
    // state in Kafka, so a scratch folder will do.
    let claims: Vec<String> = strings(&Value::Sequence(
        set["spec"]["volumeClaimTemplates"]
            .as_sequence()
            .expect("volume claims")
            .iter()
            .map(|c| c["metadata"]["name"].clone())
            .collect(),
    ));
    let reader_args = check_pod(&documents, &set["spec"]["template"], &claims, true);
    assert_eq!(
        flag_value(&reader_args, "--role").as_deref(),
        Some("reader")
    );
    let scratch: Vec<String> = ledger["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .filter(|v| !v["emptyDir"].is_null())
        .map(|v| text(&v["name"]))
        .collect();
    let ledger_args = check_pod(&documents, &ledger["spec"]["template"], &scratch, false);
    assert_eq!(
        flag_value(&ledger_args, "--role").as_deref(),
        Some("ledger")
    );
    assert!(
        ledger["spec"]["replicas"].as_u64().is_some_and(|n| n >= 2),
        "a standby ledger takes over when the active one goes"
    );
}

/// Checks one pod template against the spec it mounts; `writable` names the volumes the spec's
/// folders must be on; `stable_id`: the pod's name is its instance id. Returns its arguments.
fn check_pod(
    documents: &[Value],
    template: &Value,
    writable: &[String],
    stable_id: bool,
) -> Vec<String> {
    let config_map = kind(documents, "ConfigMap");
    let pod = &template["spec"];
    let container = &pod["containers"][0];

    // A container root made of the pod's volumes: the ConfigMap's files, a real CA for the
    // secret volume, an empty folder for the claim.
    let root = tempfile::tempdir().expect("tempdir");
    let ca = sliq_tests::tls::TestCa::new().expect("a test CA");
    let volumes = pod["volumes"].as_sequence().expect("volumes");
    let mut mounts = Vec::new();
    let mut claim_mounts = Vec::new();
    for mount in container["volumeMounts"]
        .as_sequence()
        .expect("volume mounts")
    {
        let (name, path) = (text(&mount["name"]), text(&mount["mountPath"]));
        let on_host = root.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&on_host).expect("mount folder");
        if writable.contains(&name) {
            claim_mounts.push(path.clone());
        } else {
            let volume = volumes
                .iter()
                .find(|v| text(&v["name"]) == name)
                .unwrap_or_else(|| panic!("volume {name} is mounted but not declared"));
            if !volume["configMap"].is_null() {
                assert_eq!(volume["configMap"]["name"], config_map["metadata"]["name"]);
                for (file, content) in config_map["data"].as_mapping().expect("data") {
                    std::fs::write(on_host.join(text(file)), text(content)).expect("file");
                }
            } else if !volume["secret"].is_null() {
                // The CA the Secret holds: a real one, so validate's PEM check is exercised.
                std::fs::copy(&ca.ca_cert, on_host.join("ca.pem")).expect("CA");
            }
        }
        mounts.push(path);
    }
    // Longest first, so /etc/sliq/kafka-ca is mapped before /etc/sliq.
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    let to_host = |container_path: &str| -> String {
        // Two passes through markers, so a path already moved is not moved again.
        let mut text = container_path.to_owned();
        for (i, m) in mounts.iter().enumerate() {
            text = text.replace(&format!("{m}/"), &format!("\u{0}{i}\u{0}"));
        }
        for (i, m) in mounts.iter().enumerate() {
            text = text.replace(
                &format!("\u{0}{i}\u{0}"),
                &format!("{}{m}/", root.path().display()),
            );
        }
        text
    };

    // The spec it runs, with its container paths moved under the root.
    let args = strings(&container["args"]);
    let config = flag_value(&args, "--config").expect("--config");
    let spec_in_root = PathBuf::from(to_host(&config));
    let spec_text =
        std::fs::read_to_string(&spec_in_root).expect("the spec is in a mounted volume");
    std::fs::write(&spec_in_root, to_host(&spec_text)).expect("spec");

    // The container's environment: literal values, a placeholder for each secret, the pod name.
    let mut env = BTreeMap::new();
    for variable in container["env"].as_sequence().expect("env") {
        let name = text(&variable["name"]);
        let value = if !variable["value"].is_null() {
            text(&variable["value"])
        } else if !variable["valueFrom"]["secretKeyRef"].is_null() {
            format!(
                "secret-{}",
                text(&variable["valueFrom"]["secretKeyRef"]["key"])
            )
        } else {
            assert_eq!(
                variable["valueFrom"]["fieldRef"]["fieldPath"],
                "metadata.name"
            );
            "sliq-0".to_owned()
        };
        env.insert(name, value);
    }
    if stable_id {
        assert_eq!(
            env.get("SLIQ_INSTANCE_ID").map(String::as_str),
            Some("sliq-0"),
            "each reader's instance id is its stable name"
        );
    }
    let spec = validated(&spec_in_root, &env);

    // Probes reach the admin server where --admin-listen puts it.
    let listen = flag_value(&args, "--admin-listen").expect("--admin-listen");
    let admin_port: u16 = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let ports = container["ports"].as_sequence().expect("ports");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(text(&get["path"]), path, "{probe}");
        let port = match &get["port"] {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            named => ports
                .iter()
                .find(|p| p["name"] == *named)
                .and_then(|p| p["containerPort"].as_u64())
                .and_then(|n| u16::try_from(n).ok()),
        };
        assert_eq!(
            port,
            Some(admin_port),
            "{probe} must reach --admin-listen {listen}"
        );
    }

    // What the spec writes lives on its volume, and a stop has time to finish.
    for (key, dir) in [
        ("archive.dir", &spec.archive.dir),
        ("state.dir", &spec.state.dir),
    ] {
        let inside = dir
            .strip_prefix(root.path())
            .map(|p| format!("/{}", p.display()))
            .unwrap_or_else(|_| panic!("{key} {} is outside every volume", dir.display()));
        assert!(
            is_mounted(Path::new(&inside), &claim_mounts),
            "{key} is {inside}, not on a volume it may write ({})",
            claim_mounts.join(", ")
        );
    }
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace period");
    assert!(
        grace > spec.shutdown_timeout.0.as_secs(),
        "terminationGracePeriodSeconds {grace} must exceed shutdown_timeout {}",
        spec.shutdown_timeout
    );
    args
}
