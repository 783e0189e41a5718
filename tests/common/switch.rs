//! A TCP switch in front of a test server: a receiver that goes away (refused connections, cut
//! connections) and comes back.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// A TCP switch in front of a server: passes connections through, or (off) refuses new ones
/// and cuts the open ones — a receiver that went away.
pub struct Switch {
    pub url: String,
    on: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Switch {
    pub async fn start(upstream: &str) -> Switch {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = upstream.trim_start_matches("http://").to_string();
        let on = Arc::new(AtomicU8::new(1));
        let flag = on.clone();
        let task = tokio::spawn(async move {
            let mut listener = Some(listener);
            loop {
                if flag.load(Ordering::SeqCst) == 0 {
                    // Off: close the listening socket (connections are refused) until on again.
                    listener = None;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                let l = match &listener {
                    Some(l) => l,
                    None => match tokio::net::TcpListener::bind(addr).await {
                        Ok(l) => listener.insert(l),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    },
                };
                let accepted = tokio::select! {
                    a = l.accept() => a,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                let (up, flag) = (up.clone(), flag.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&up).await else {
                        return;
                    };
                    let pump = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while flag.load(Ordering::SeqCst) == 1 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! { _ = pump => {}, _ = cut => {} }
                });
            }
        });
        Switch {
            url: format!("http://{addr}"),
            on,
            task,
        }
    }

    pub fn set(&self, on: bool) {
        self.on.store(u8::from(on), Ordering::SeqCst);
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
