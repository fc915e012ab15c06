//! The plugin host: init order, disabled plugins, failures named, reverse-order graceful stop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rr_runtime::config::Config;
use rr_runtime::host::Host;
use rr_runtime::{BoxError, Build, InitContext, Plugin};
use tokio_util::sync::CancellationToken;

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(e: impl Into<String>) {
    EVENTS.lock().unwrap().push(e.into());
}

#[derive(serde::Deserialize)]
struct Section {
    #[serde(default)]
    fail_serve: bool,
}

macro_rules! plugin {
    ($ty:ident, $name:literal) => {
        struct $ty {
            section: Section,
        }
        impl Plugin for $ty {
            const NAME: &'static str = $name;
            fn init(ctx: &InitContext<'_>) -> Result<Option<Self>, BoxError> {
                let Some(section) = ctx.section::<Section>($name)? else { return Ok(None) };
                log(concat!("init ", $name));
                Ok(Some($ty { section }))
            }
            async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), BoxError> {
                log(concat!("serve ", $name));
                if self.section.fail_serve {
                    return Err("port already in use".into());
                }
                shutdown.cancelled().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                log(concat!("drained ", $name));
                Ok(())
            }
            async fn stop(&self) -> Result<(), BoxError> {
                log(concat!("stop ", $name));
                Ok(())
            }
        }
    };
}

plugin!(First, "first");
plugin!(Second, "second");
plugin!(Third, "third");

fn build() -> Build {
    Build::new("rr", "test").plugin::<First>().plugin::<Second>().plugin::<Third>()
}

// One test body: the plugins share a global event log.
#[tokio::test]
async fn lifecycle() {
    // `third` has no section: it stays off. Stop hooks run in reverse order after serve drained.
    let config = Config::from_str("version: '3'\nfirst: {}\nsecond: {}\n").unwrap();
    let host = Host::init(&build(), &config).unwrap();
    assert_eq!(host.services.enabled.names(), ["first", "second"]);
    host.run_until(tokio::time::sleep(Duration::from_millis(50)), Duration::from_secs(5)).await.unwrap();
    let events = std::mem::take(&mut *EVENTS.lock().unwrap());
    assert_eq!(&events[..2], ["init first", "init second"]);
    assert!(events[2..4].contains(&"serve first".to_string()) && events[2..4].contains(&"serve second".to_string()));
    let at = |e: &str| events.iter().position(|x| x == e).unwrap();
    assert!(at("drained second") < at("drained first"), "second drains before first starts stopping: {events:?}");
    assert!(at("drained first") < at("stop second"), "stop hooks after every serve drained: {events:?}");
    assert_eq!(&events[events.len() - 2..], ["stop second", "stop first"]);

    // A failing serve stops the server and names the plugin.
    let config = Config::from_str("version: '3'\nfirst: {}\nsecond: {fail_serve: true}\n").unwrap();
    let host = Host::init(&build(), &config).unwrap();
    let err = host.run_until(std::future::pending(), Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(err.to_string(), "plugin `second`: port already in use");
    let events = std::mem::take(&mut *EVENTS.lock().unwrap());
    assert!(events.contains(&"drained first".to_string()), "the others still stop gracefully: {events:?}");

    // A bad section fails init with the plugin's name and the key path (`12` would read as true, as in RoadRunner).
    let config = Config::from_str("version: '3'\nfirst: {fail_serve: maybe}\n").unwrap();
    let err = Host::init(&build(), &config).err().unwrap().to_string();
    assert!(err.starts_with("plugin `first` failed to initialise: "), "{err}");
    assert!(err.contains("first.fail_serve"), "{err}");
}
