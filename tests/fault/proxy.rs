//! A UDP proxy between simulated agents and the aggregator that can drop
//! every packet (a network cut) or a share of them (packet loss), in both
//! directions. Runs on its own thread and runtime so the scenarios' blocking
//! waits cannot stall it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tokio::net::UdpSocket;

/// Drop decisions and counters shared by both directions.
struct Shared {
    upstream: Mutex<SocketAddr>,
    drop_per_mille: AtomicU32,
    packets: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    /// True when this packet is dropped: a splitmix64 hash of the packet
    /// counter below `drop_per_mille` / 1000 (deterministic sequence).
    fn drop_next(&self) -> bool {
        let n = self.packets.fetch_add(1, Ordering::Relaxed);
        let per_mille = u64::from(self.drop_per_mille.load(Ordering::Relaxed));
        let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let dropped = z % 1_000 < per_mille;
        if dropped {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        dropped
    }
}

/// A running proxy; agents connect to [`UdpProxy::addr`].
pub struct UdpProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl UdpProxy {
    /// Forwards datagrams between clients and `upstream` (one upstream
    /// socket per client address; replies are accepted from any upstream,
    /// so a replica switched away from can still close its connections).
    pub fn start(upstream: SocketAddr) -> UdpProxy {
        let shared = Arc::new(Shared { upstream: Mutex::new(upstream), drop_per_mille: AtomicU32::new(0), packets: AtomicU64::new(0), dropped: AtomicU64::new(0) });
        let (tx, rx) = std::sync::mpsc::channel();
        let task_shared = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("proxy runtime");
            rt.block_on(async move {
                let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("proxy bind"));
                tx.send(front.local_addr().expect("proxy addr")).expect("report proxy addr");
                let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
                let mut buf = vec![0u8; 65_536];
                loop {
                    let Ok((n, client)) = front.recv_from(&mut buf).await else { continue };
                    let up = match clients.get(&client) {
                        Some(up) => up.clone(),
                        None => {
                            let up = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("upstream bind"));
                            clients.insert(client, up.clone());
                            let (up2, front2, shared2) = (up.clone(), front.clone(), task_shared.clone());
                            tokio::spawn(async move {
                                let mut back = vec![0u8; 65_536];
                                while let Ok((m, _)) = up2.recv_from(&mut back).await {
                                    if !shared2.drop_next() {
                                        let _ = front2.send_to(&back[..m], client).await;
                                    }
                                }
                            });
                            up
                        }
                    };
                    if !task_shared.drop_next() {
                        let to = *task_shared.upstream.lock().expect("upstream lock");
                        let _ = up.send_to(&buf[..n], to).await;
                    }
                }
            });
        });
        let addr = rx.recv().expect("proxy started");
        UdpProxy { addr, shared }
    }

    /// Sends clients' packets to `upstream` from now on (a load balancer
    /// moving traffic to another replica).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().expect("upstream lock") = upstream;
    }

    /// Drops this share of packets from now on (1000 = everything).
    pub fn set_drop_per_mille(&self, per_mille: u32) {
        self.shared.drop_per_mille.store(per_mille.min(1_000), Ordering::Relaxed);
    }

    /// (packets seen, packets dropped).
    pub fn counts(&self) -> (u64, u64) {
        (self.shared.packets.load(Ordering::Relaxed), self.shared.dropped.load(Ordering::Relaxed))
    }
}
