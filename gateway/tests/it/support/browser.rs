//! A real browser: Debian's headless Chromium driven over WebDriver by
//! Debian's chromedriver, with the `fantoccini` client. Nothing is
//! downloaded at run time; `./test` installs both packages.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium session, with its chromedriver and a fresh profile;
/// all of it ends on drop, whatever the test's outcome.
pub struct Browser {
    pub client: fantoccini::Client,
    driver: Child,
    /// Removed after every process of the group has exited (fields drop
    /// after [`Drop::drop`]).
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Ends the WebDriver session (Chromium closes its windows and exits),
    /// then everything else as on drop.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// chromedriver starts Chromium, which starts its helpers (zygotes,
    /// renderers, the GPU and network processes): killing chromedriver alone
    /// leaves them all running, with their profile. They share chromedriver's
    /// process group (its own, see [`browser`]), so the whole group is
    /// killed, and waited for, before the profile is removed.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
        for _ in 0..200 {
            let alive = Command::new("kill")
                .args(["-0", "--", &group])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

fn chromedriver() -> Option<String> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(str::to_owned)
}

/// Starts Chromium trusting the TLS leaf whose public key hashes to
/// `spki` (base64 SHA-256; see [`super::Pki::issue_spki`]).
pub async fn browser(spki: &str) -> Browser {
    let driver_path = chromedriver();
    assert!(
        Path::new(CHROMIUM).exists() && driver_path.is_some(),
        "the browser test needs Debian's chromium and chromium-driver: ./test installs them \
         (apt-get install chromium chromium-driver)"
    );
    let port = free_port();
    // Its own process group, which Chromium and its helpers join: see Drop.
    let driver = Command::new(driver_path.unwrap())
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver did not start");
    let url = format!("http://127.0.0.1:{port}");
    let http = super::client();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(res) = http.get(format!("{url}/status")).send().await {
            let status: serde_json::Value = res.json().await.unwrap_or_default();
            if status["value"]["ready"] == true {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "chromedriver did not become ready on port {port}");
    let profile = tempfile::tempdir().unwrap();
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        "--no-default-browser-check".to_owned(),
        "--no-proxy-server".to_owned(),
        // No crash handler: it would outlive the browser.
        "--disable-breakpad".to_owned(),
        "--disable-crash-reporter".to_owned(),
        format!("--user-data-dir={}", profile.path().display()),
        format!("--ignore-certificate-errors-spki-list={spki}"),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), "chrome".into());
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({ "binary": CHROMIUM, "args": args }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = fantoccini::ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&url)
        .await
        .expect("no WebDriver session with chromium");
    Browser {
        client,
        driver,
        _profile: profile,
    }
}

impl Browser {
    /// The text of the element with id `id` once the page has one.
    pub async fn text_of(&self, id: &str) -> String {
        let el = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(fantoccini::Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id} on the page: {e}"));
        el.text().await.unwrap()
    }

    /// Runs `body` (an async function body that returns a value) in the
    /// page and returns its value.
    pub async fn run(&self, body: &str) -> serde_json::Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             (async () => {{ {body} }})().then(done, e => done('error: ' + e));"
        );
        self.client
            .execute_async(&script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Waits until `id`'s text is not `from` any more (within 10 s).
    pub async fn wait_change(&self, id: &str, from: &str) -> String {
        for _ in 0..100 {
            let now = self.text_of(id).await;
            if now != from {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("#{id} stayed {from:?}");
    }
}
