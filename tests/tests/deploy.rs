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
