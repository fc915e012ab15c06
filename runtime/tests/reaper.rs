//! Orphaned grandchildren of workers are reaped when the server is init (here: a subreaper).

use std::time::Duration;

use rr_runtime::Build;
use rr_runtime::config::Config;
use rr_runtime::pool::Payload;

/// Zombie processes whose parent is this test process.
fn our_zombies() -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
            rest[0] == "Z" && rest[1] == me
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_of_workers_are_reaped() {
    // SAFETY: set before any other thread of this test binary reads the environment.
    unsafe { std::env::set_var("RR_SUBREAPER", "1") };
    rr_runtime::reaper::start_if_init();
    let worker = format!("php {}/../tests/php/workers/echo.php", env!("CARGO_MANIFEST_DIR"));
    let config = Config::from_str(&format!("version: '3'\nserver:\n  command: \"{worker}\"\n")).unwrap();
    let services = rr_runtime::host::services(&Build::new("rr", "test"), &config).unwrap();
    let cfg = config.section("pool").unwrap().unwrap_or_else(|| rr_runtime::pool::PoolConfig { num_workers: 1, ..Default::default() });
    let pool = services.new_pool("test", "test", cfg).await.unwrap();
    for _ in 0..3 {
        pool.exec(Payload::new(0, "", "orphan:0.2")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(our_zombies(), Vec::<u32>::new(), "orphans were left as zombies");
    // Workers are still served normally (their exits are not stolen by the reaper).
    assert_eq!(&pool.exec(Payload::new(0, "", "x")).await.unwrap().payload.body[..], b"x");
    pool.destroy().await;
}
