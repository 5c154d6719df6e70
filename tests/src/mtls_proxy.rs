//! A TLS-terminating proxy that requires a client certificate signed by the test CA and forwards
//! the decrypted bytes to a plaintext port: put in front of Nisshi (which cannot ask for client
//! certificates), it makes the broker a mutual-TLS one as far as any client can tell. It runs on
//! its own thread and runtime, so it serves whatever the test's runtime is busy with.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};

use crate::tls::TestCa;

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct MtlsProxy {
    port: u16,
    counts: Arc<Counts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Counts {
    /// Connections whose client presented a certificate of the CA and that were forwarded.
    forwarded: AtomicU64,
    /// Connections whose handshake failed (no certificate, a stranger's, no TLS at all, or a
    /// client that closed mid-handshake).
    refused: AtomicU64,
}

impl MtlsProxy {
    /// Listens on a free loopback port with `ca`'s server certificate and forwards each
    /// connection that proves a client certificate of `ca` to `127.0.0.1:upstream`.
    pub fn start(ca: &TestCa, upstream: u16) -> anyhow::Result<MtlsProxy> {
        let config = crate::tls::mtls_server_config(&ca.server_tls()?)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("the proxy's runtime")?;
        let served = Arc::clone(&counts);
        let thread = std::thread::Builder::new()
            .name(format!("mtls-proxy-{port}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    tokio::select! {
                        () = accept_loop(listener, acceptor, upstream, served) => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(MtlsProxy {
            port,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections forwarded so far (each one passed the client-certificate check).
    pub fn forwarded(&self) -> u64 {
        self.counts.forwarded.load(Ordering::SeqCst)
    }

    /// Connections refused at the handshake so far.
    pub fn refused(&self) -> u64 {
        self.counts.refused.load(Ordering::SeqCst)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    upstream: u16,
    counts: Arc<Counts>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, counts) = (acceptor.clone(), Arc::clone(&counts));
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(client).await else {
                counts.refused.fetch_add(1, Ordering::SeqCst);
                return;
            };
            // The broker may be down (restarting): the client sees the connection close.
            let Ok(mut broker) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                return;
            };
            counts.forwarded.fetch_add(1, Ordering::SeqCst);
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
        });
    }
}

impl Drop for MtlsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
