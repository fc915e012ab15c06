//! systemd's notify protocol (`Type=notify` units): `READY=1` once the plugins serve,
//! `STOPPING=1` on the first stop signal, `WATCHDOG=1` every `endure.watchdog_sec`. The
//! datagram goes to `NOTIFY_SOCKET` (the sd-notify crate; abstract `@` names included).

use std::time::Duration;

use sd_notify::NotifyState;

/// Send `state` if `NOTIFY_SOCKET` is set. `Ok(false)` when it is not (not run by systemd).
pub fn notify(state: NotifyState<'_>) -> std::io::Result<bool> {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Ok(false);
    }
    sd_notify::notify(&[state])?;
    Ok(true)
}

/// `WATCHDOG=1` every `every` until the task is dropped or aborted.
pub fn watchdog(every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = notify(NotifyState::Watchdog) {
                tracing::warn!(error = %e, "sdnotify: cannot send WATCHDOG=1");
            }
        }
    })
}
