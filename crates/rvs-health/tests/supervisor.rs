//! The supervisor: bounded concurrency over many checkers, events and status.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_health::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn schedule(delay_loop: Duration, retry: u32, alpha: bool) -> Schedule {
    Schedule {
        delay_loop,
        retry,
        delay_before_retry: Duration::from_millis(50),
        warmup: Duration::ZERO,
        alpha,
    }
}

/// An HTTP server answering after `delay`, counting concurrent requests.
async fn slow_http(delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind((LO, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let served2 = served.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let served = served2.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                // Count before answering: the checker may report before this task runs again.
                served.fetch_add(1, Ordering::SeqCst);
                let _ = s
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    (port, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_checks_with_bounded_concurrency() {
    let (port, served) = slow_http(Duration::from_millis(20)).await;
    let jobs: Vec<CheckJob> = (0..300)
        .map(|i| CheckJob {
            id: CheckId(i),
            spec: CheckSpec {
                conn: ConnectOpts::new(LO, port),
                kind: CheckKind::Http(HttpSpec {
                    urls: vec![UrlSpec {
                        path: "/".into(),
                        ..UrlSpec::default()
                    }],
                    ..HttpSpec::default()
                }),
            },
            schedule: schedule(Duration::from_secs(3600), 1, true),
        })
        .collect();
    let started = Instant::now();
    let (sup, mut events) = Supervisor::start(&tokio::runtime::Handle::current(), 8, jobs);
    // start() returned at once, without waiting for any check.
    assert!(started.elapsed() < Duration::from_millis(500));
    let mut ups = 0;
    while ups < 300 {
        let ev = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("events in time")
            .expect("channel open");
        assert_eq!(ev.event, HealthEvent::Up);
        ups += 1;
    }
    assert_eq!(served.load(Ordering::SeqCst), 300);
    let max = sup.max_in_flight();
    assert!((2..=8).contains(&max), "max in flight {max}");
    let status = sup.status();
    assert_eq!(status.len(), 300);
    assert!(status
        .iter()
        .all(|s| s.up && s.runs == 1 && s.last_time.is_some()));
    assert!(status
        .iter()
        .all(|s| s.last_result.as_ref().is_some_and(|r| r.ok)));
    sup.stop();
}

#[tokio::test]
async fn failing_server_goes_down_after_retries_and_status_counts_failures() {
    // Bound, not listening, held for the test: refused, and no other test's server can take
    // the port meanwhile.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind(std::net::SocketAddr::from((LO, 0))).unwrap();
    let closed = held.local_addr().unwrap().port();
    let up = TcpListener::bind((LO, 0)).await.unwrap();
    let up_port = up.local_addr().unwrap().port();
    let jobs = vec![
        CheckJob {
            id: CheckId(1),
            spec: CheckSpec {
                conn: ConnectOpts::new(LO, closed),
                kind: CheckKind::Tcp,
            },
            schedule: schedule(Duration::from_millis(100), 2, false),
        },
        CheckJob {
            id: CheckId(2),
            spec: CheckSpec {
                conn: ConnectOpts::new(LO, up_port),
                kind: CheckKind::Tcp,
            },
            schedule: schedule(Duration::from_millis(100), 2, false),
        },
    ];
    let t0 = Instant::now();
    let (sup, mut events) = Supervisor::start(&tokio::runtime::Handle::current(), 4, jobs);
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.id, CheckId(1));
    assert_eq!(ev.event, HealthEvent::Down);
    assert!(ev.detail.contains("refused"), "{}", ev.detail);
    // Three failures: first check plus two retries 50 ms apart.
    assert!(t0.elapsed() >= Duration::from_millis(100));
    let status = sup.status();
    assert!(!status[0].up);
    assert!(status[0].consecutive_failures >= 3);
    assert!(status[1].up && status[1].consecutive_failures == 0);
    // Nothing else happens for the healthy one.
    tokio::time::sleep(Duration::from_millis(250)).await;
    while let Ok(ev) = events.try_recv() {
        assert_ne!(ev.id, CheckId(2), "unexpected {ev:?}");
    }
    sup.stop();
    drop(up);
}

#[tokio::test]
async fn misc_dynamic_weight_reaches_the_channel() {
    let jobs = vec![CheckJob {
        id: CheckId(9),
        spec: CheckSpec {
            conn: ConnectOpts::new(LO, 0),
            kind: CheckKind::Misc(MiscSpec {
                misc_path: vec!["sh".into(), "-c".into(), "exit 12".into()],
                misc_timeout: Duration::from_secs(5),
                misc_dynamic: true,
            }),
        },
        schedule: schedule(Duration::from_secs(3600), 1, false),
    }];
    let (sup, mut events) = Supervisor::start(&tokio::runtime::Handle::current(), 1, jobs);
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ev.event, HealthEvent::WeightChanged(10));
    assert_eq!(sup.status()[0].weight, Some(10));
}
