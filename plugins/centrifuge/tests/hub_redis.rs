//! Several `rr` servers with the hub sharing publications, history and presence through Redis
//! (`broker.driver: redis`): centrifuge-js recovering what PHP published on another server,
//! presence, join/leave, Info and Channels across servers, a killed server's presence expiring, and Redis
//! behind a Sentinel through a failover. Needs Redis on 127.0.0.1:6379 (each test uses its own
//! key prefix) and redis-server for the Sentinel test's own processes.

#[path = "support/hub.rs"]
mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::SinkExt;
use prost::Message as _;
use rr_centrifuge::api_proto as api;
use rr_runtime::testing::free_port;
use serde_json::json;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const HISTORY: &str = "    history_size: 10\n    history_ttl: 60s\n    presence: true\n    join_leave: true\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_recovers_across_servers_and_presence_counts_both() {
    let hub = HISTORY.to_string() + &broker("recover", "");
    let a_port = free_port();
    let (a, b) = (serve(&hub, Some(a_port)).await, serve(&hub, None).await);
    let mut node = Node::start(&a.url(), "news");
    let (subscribed, _) = node.until("subscribed").await;
    assert_eq!(subscribed["recoverable"].as_bool(), Some(true), "{subscribed}");
    let epoch = subscribed["epoch"].as_str().unwrap().to_string();

    // PHP publishes on B: positioned in Redis, delivered to the client on A.
    let first = b.publish("news", &json!({"n": 1})).await.result.unwrap();
    assert_eq!((first.offset, first.epoch.as_str()), (1, epoch.as_str()), "one stream for both servers");
    let (publication, _) = node.until("publication").await;
    assert_eq!((publication["data"].clone(), publication["offset"].as_u64()), (json!({"n": 1}), Some(1)));

    // Presence on either server counts the clients of both; join/leave cross servers.
    let (mut on_b, on_b_id) = subscriber(&b.url(), "news", true).await;
    let (joined, _) = node.until("join").await;
    assert_eq!(joined["client"], on_b_id.as_str(), "B's join reached the client on A");
    let both = eventually("presence of both servers' clients", Duration::from_secs(5), || async {
        let (on_a, on_b) = (a.presence("news").await, b.presence("news").await);
        (on_a.len() == 2 && on_a == on_b).then_some(on_a)
    })
    .await;
    assert!(both.contains(&on_b_id), "{both:?}");
    on_b.send(Message::text(json!({"id": 3, "presence_stats": {"channel": "news"}}).to_string())).await.unwrap();
    assert_eq!(text(&mut on_b).await["presence_stats"], json!({"num_clients": 2, "num_users": 1}));
    let (mut brief, brief_id) = subscriber(&a.url(), "news", false).await;
    assert_eq!(text(&mut on_b).await["push"]["join"]["info"]["client"], brief_id.as_str(), "A's join reached B's client");
    brief.close(None).await.unwrap();
    assert_eq!(text(&mut on_b).await["push"]["leave"]["info"]["client"], brief_id.as_str(), "and its leave");

    // A restarts; meanwhile PHP publishes twice on B. The client reconnects to the new A and
    // recovers both from Redis, with the same epoch.
    a.server.stop().await.unwrap();
    node.until("connecting").await;
    b.publish("news", &json!({"n": 2})).await;
    b.publish("news", &json!({"n": 3})).await;
    let a2 = serve(&hub, Some(a_port)).await;
    let (resubscribed, _) = node.until("subscribed").await;
    assert_eq!((resubscribed["wasRecovering"].as_bool(), resubscribed["recovered"].as_bool(), resubscribed["epoch"].as_str()), (Some(true), Some(true), Some(epoch.as_str())), "{resubscribed}");
    for n in [2, 3] {
        let (p, _) = node.until("publication").await;
        assert_eq!((p["data"].clone(), p["offset"].as_u64()), (json!({"n": n}), Some(n)), "recovered in order");
    }
    let history = a2.history("news").await;
    assert_eq!((history.publications.len(), history.offset, history.epoch.as_str()), (3, 3, epoch.as_str()));

    // The hub's metrics.
    let metrics = a2.metrics().await;
    for line in ["rr_centrifugo_hub_connections 1", "rr_centrifugo_hub_subscriptions 1"] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(metrics.contains("rr_centrifugo_hub_messages_sent_total"), "{metrics}");
    let b_metrics = b.metrics().await;
    assert!(b_metrics.contains("rr_centrifugo_hub_publications_total 3"), "{b_metrics}");
    // PHP's Disconnect on B reaches the user's client on A2 too (counted there by close code).
    let req = api::DisconnectRequest { user: "42".into(), ..Default::default() };
    php(&b.rpc, json!([["centrifuge.Disconnect", STANDARD.encode(req.encode_to_vec())]])).await;
    assert_eq!(node.until("disconnected").await.0["code"], 3503);
    let metrics = a2.metrics().await;
    assert!(metrics.contains(r#"rr_centrifugo_hub_disconnects_total{code="3503"} 1"#), "{metrics}");
    node.quit().await;
    a2.server.stop().await.unwrap();
    b.server.stop().await.unwrap();
}

/// Not a test: the server process `a_killed_servers_presence_expires_within_presence_ttl`
/// starts (this binary again, with `RR_HUB_CHILD_YAML`) and kills. Returns at once without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killable_server_process() {
    let Ok(yaml) = std::env::var("RR_HUB_CHILD_YAML") else { return };
    let _server = rr_runtime::testing::TestServer::start(&build(), &yaml);
    tokio::time::sleep(Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_servers_presence_expires_within_presence_ttl() {
    let hub = HISTORY.to_string() + &broker("killed", "        presence_ttl: 2s\n");
    let b = serve(&hub, None).await;
    let port = free_port();
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "killable_server_process", "--nocapture"])
        .env("RR_HUB_CHILD_YAML", yaml(port, free_port(), free_port(), &hub))
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    eventually("the child server", Duration::from_secs(20), || async { tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok() }).await;
    let (_on_killed, killed_id) = subscriber(&format!("ws://127.0.0.1:{port}/connection/websocket"), "room", false).await;
    let (_on_b, b_id) = subscriber(&b.url(), "room", false).await;
    let mut both = vec![killed_id.clone(), b_id.clone()];
    both.sort();
    eventually("presence of both", Duration::from_secs(5), || async { (b.presence("room").await == both).then_some(()) }).await;
    // Longer than presence_ttl: the live server's entries are refreshed and stay.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.presence("room").await, both, "refreshed entries outlive presence_ttl");

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let killed = Instant::now();
    eventually("the killed server's entry to expire", Duration::from_secs(6), || async { (b.presence("room").await == [b_id.clone()]).then_some(()) }).await;
    assert!(killed.elapsed() <= Duration::from_millis(3500), "gone within presence_ttl (2s) of the kill, give or take a PHP call: {:?}", killed.elapsed());
    b.server.stop().await.unwrap();
}

/// `master_name` makes `addrs` Sentinels: two servers share history and publications through
/// the master they name, and after a failover both follow the promoted replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_through_a_sentinel_follow_a_failover() {
    let (master_port, replica_port, sentinel_port) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let base = |port: u16| vec!["--port".to_string(), port.to_string(), "--bind".into(), "127.0.0.1".into(), "--save".into(), String::new(), "--appendonly".into(), "no".into()];
    let master_args = base(master_port);
    let mut replica_args = base(replica_port);
    replica_args.extend(["--replicaof".into(), "127.0.0.1".into(), master_port.to_string(), "--dbfilename".into(), "replica.rdb".into()]);
    let mut master = Some(RedisProcess::start(dir.path(), &master_args.iter().map(String::as_str).collect::<Vec<_>>()));
    let _replica = RedisProcess::start(dir.path(), &replica_args.iter().map(String::as_str).collect::<Vec<_>>());
    let conf = dir.path().join("sentinel.conf");
    let sentinel = format!(
        "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor hub 127.0.0.1 {master_port} 1\nsentinel down-after-milliseconds hub 500\nsentinel failover-timeout hub 5000\n",
        dir.path().display()
    );
    std::fs::write(&conf, sentinel).unwrap();
    let _sentinel = RedisProcess::start(dir.path(), &[conf.to_str().unwrap(), "--sentinel"]);
    let synced = || async { redis_cli(replica_port, &["info", "replication"]).contains("master_link_status:up").then_some(()) };
    eventually("the replica to sync", Duration::from_secs(20), synced).await;
    let seen = || async { redis_cli(sentinel_port, &["sentinel", "replicas", "hub"]).contains(&replica_port.to_string()).then_some(()) };
    eventually("the Sentinel to see the replica", Duration::from_secs(20), seen).await;

    let hub = HISTORY.to_string() + &broker("sentinel", &format!("        addrs: [127.0.0.1:{sentinel_port}]\n        master_name: hub\n"));
    let (a, b) = (serve(&hub, None).await, serve(&hub, None).await);
    let (mut on_b, _) = subscriber(&b.url(), "s", false).await;
    let first = a.publish("s", &json!({"n": 1})).await.result.unwrap();
    assert_eq!(text(&mut on_b).await["push"]["pub"]["data"], json!({"n": 1}));
    assert_eq!(redis_cli(master_port, &["xlen", &format!("rr-test-{}-sentinel.stream.{{s}}", std::process::id())]), "1", "kept on the master the Sentinel named");

    drop(master.take());
    let promoted = || async { redis_cli(sentinel_port, &["sentinel", "get-master-addr-by-name", "hub"]).ends_with(&replica_port.to_string()).then_some(()) };
    eventually("the failover", Duration::from_secs(30), promoted).await;
    // The stream moved with the data: the next publication continues it, on the new master,
    // and B's subscription follows (re-established within a second or so).
    let second = a.publish("s", &json!({"n": 2})).await.result.unwrap_or_else(|| panic!("publish after the failover failed"));
    assert_eq!((second.offset, second.epoch.as_str()), (2, first.epoch.as_str()));
    let start = Instant::now();
    let received = loop {
        assert!(start.elapsed() < Duration::from_secs(10), "no publication through the new master reached B's client");
        a.publish("s", &json!({"n": 3})).await;
        if let Ok(next) = tokio::time::timeout(Duration::from_millis(500), text(&mut on_b)).await {
            break next;
        }
    };
    assert!(received["push"]["pub"]["data"]["n"].as_u64().unwrap() >= 2, "{received}");
    assert!(b.history("s").await.publications.len() >= 2);
    a.server.stop().await.unwrap();
    b.server.stop().await.unwrap();
}

/// Several `addrs` without `master_name`: a Redis cluster. A channel's keys share a slot (the
/// scripts run there), publications reach the other server's clients, history and presence
/// are shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_a_redis_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let _nodes: Vec<RedisProcess> = ports
        .iter()
        .map(|p| {
            let conf = dir.path().join(format!("nodes-{p}.conf"));
            let args = ["--port", &p.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file", conf.to_str().unwrap()].map(String::from);
            RedisProcess::start(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .collect();
    for p in ports {
        eventually("a cluster node", Duration::from_secs(10), || async move { (redis_cli(p, &["ping"]) == "PONG").then_some(()) }).await;
    }
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let created = std::process::Command::new("redis-cli").args(["--cluster", "create"]).args(&addrs).args(["--cluster-replicas", "0", "--cluster-yes"]).output().unwrap();
    assert!(created.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&created.stdout));
    for p in ports {
        eventually("the cluster to be ok", Duration::from_secs(20), || async move { redis_cli(p, &["cluster", "info"]).contains("cluster_state:ok").then_some(()) }).await;
    }

    let hub = HISTORY.to_string() + &broker("cluster", &format!("        addrs: [{}]\n", addrs.join(", ")));
    let (a, b) = (serve(&hub, None).await, serve(&hub, None).await);
    let (mut on_b, on_b_id) = subscriber(&b.url(), "c1", false).await;
    let (_on_a, on_a_id) = subscriber(&a.url(), "c1", false).await;
    // Channels in several slots: each publication is positioned in its own stream.
    for (i, channel) in ["c1", "c2", "c3", "c4"].iter().enumerate() {
        let p = a.publish(channel, &json!({"i": i})).await.result.unwrap();
        assert_eq!(p.offset, 1, "{channel}");
    }
    assert_eq!(text(&mut on_b).await["push"]["pub"]["data"], json!({"i": 0}), "from A to B's client through the cluster");
    assert_eq!(b.history("c3").await.publications.len(), 1);
    let mut both = vec![on_a_id, on_b_id];
    both.sort();
    eventually("presence of both", Duration::from_secs(5), || async { (a.presence("c1").await == both).then_some(()) }).await;
    a.server.stop().await.unwrap();
    b.server.stop().await.unwrap();
}

/// Redis going away mid-session is error 100 (temporary) to clients and PHP, nothing worse;
/// once it is back, calls and the pub/sub subscription are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_is_error_100_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let port_text = port.to_string();
    let args = ["--port", port_text.as_str(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
    let up = || async { (redis_cli(port, &["ping"]) == "PONG").then_some(()) };
    let mut redis = Some(RedisProcess::start(dir.path(), &args));
    eventually("redis-server", Duration::from_secs(10), up).await;
    let hub = serve(&(HISTORY.to_string() + &broker("gone", &format!("        addrs: [127.0.0.1:{port}]\n"))), None).await;
    let (mut ws, _) = subscriber(&hub.url(), "g", false).await;

    drop(redis.take());
    ws.send(Message::text(json!({"id": 3, "history": {"channel": "g", "limit": -1}}).to_string())).await.unwrap();
    assert_eq!(text(&mut ws).await, json!({"id": 3, "error": {"code": 100, "message": "internal server error", "temporary": true}}));
    assert_eq!(hub.publish("g", &json!({"n": 1})).await.error.map(|e| e.code), Some(100));

    let _redis = RedisProcess::start(dir.path(), &args);
    eventually("redis-server again", Duration::from_secs(10), up).await;
    let start = Instant::now();
    let received = loop {
        assert!(start.elapsed() < Duration::from_secs(10), "not served again after Redis came back");
        if hub.publish("g", &json!({"n": 2})).await.error.is_none()
            && let Ok(next) = tokio::time::timeout(Duration::from_millis(500), text(&mut ws)).await
        {
            break next;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(received["push"]["pub"]["data"], json!({"n": 2}), "{received}");
    hub.server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_channels_report_every_server() {
    let hub = broker("nodes", "");
    let (a, b) = (serve(&hub, None).await, serve(&hub, None).await);
    let _on_a = subscriber(&a.url(), "room", false).await;
    let _on_b = (subscriber(&b.url(), "room", false).await, subscriber(&b.url(), "room", false).await, subscriber(&b.url(), "other", false).await);
    let info = |rpc: String| async move {
        let r = php(&rpc, json!([["centrifuge.Info", ""], ["centrifuge.Channels", STANDARD.encode(api::ChannelsRequest { pattern: "r*".into() }.encode_to_vec())]])).await;
        let mut nodes: Vec<(String, u32, u32, u32)> = decode::<rr_centrifuge::hub::api::InfoResponse>(&r[0]).result.unwrap().nodes.into_iter().map(|n| (n.uid, n.num_clients, n.num_users, n.num_channels)).collect();
        nodes.sort_by_key(|n| n.1);
        let channels: Vec<(String, u32)> = decode::<api::ChannelsResponse>(&r[1]).result.unwrap().channels.into_iter().map(|(c, i)| (c, i.num_clients)).collect();
        (nodes, channels)
    };
    // Each server's state reaches Redis within ANNOUNCE_EVERY (3 s); either server reports both.
    for rpc in [a.rpc.clone(), b.rpc.clone()] {
        let (nodes, channels) = eventually("both servers in Info", Duration::from_secs(8), || {
            let rpc = rpc.clone();
            async move { Some(info(rpc).await).filter(|(n, _)| n.len() == 2 && n[1].1 == 3) }
        })
        .await;
        assert_eq!(nodes.iter().map(|n| (n.1, n.2, n.3)).collect::<Vec<_>>(), vec![(1, 1, 1), (3, 1, 2)], "clients, users, channels per server: {nodes:?}");
        assert_ne!(nodes[0].0, nodes[1].0, "two node ids");
        assert_eq!(channels, vec![("room".to_string(), 3)], "subscribers summed over servers, `other` filtered out");
    }
    // B stops: it removes its entry, and A reports itself alone.
    b.server.stop().await.unwrap();
    let (nodes, channels) = eventually("A alone", Duration::from_secs(12), || {
        let rpc = a.rpc.clone();
        async move { Some(info(rpc).await).filter(|(n, _)| n.len() == 1) }
    })
    .await;
    assert_eq!((nodes[0].1, channels), (1, vec![("room".to_string(), 1)]));
    a.server.stop().await.unwrap();
}
