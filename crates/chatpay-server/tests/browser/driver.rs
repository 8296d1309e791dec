//! Chromium over WebDriver: one chromedriver per test binary (started here on a free loopback
//! port, stopped by its own handle), one browser session per journey, each with a fresh user
//! data directory. What a failing journey leaves behind: a screenshot, the page's HTML and the
//! browser console, under `target/browser-failures/<journey>/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long any one wait may take before the journey fails (a deadline, not a pace).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Where the browser and its driver are.
pub struct Browser {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

impl Browser {
    /// The installed Chromium and chromedriver, or why they can't be used.
    pub fn find() -> Result<Browser, String> {
        let pick = |env: &str, names: &[&str]| -> Result<PathBuf, String> {
            if let Ok(p) = std::env::var(env) {
                let p = PathBuf::from(p);
                return if p.is_file() {
                    Ok(p)
                } else {
                    Err(format!("{env}={} is not a file", p.display()))
                };
            }
            let path = std::env::var_os("PATH").unwrap_or_default();
            names
                .iter()
                .find_map(|n| {
                    std::env::split_paths(&path)
                        .map(|d| d.join(n))
                        .find(|p| p.is_file())
                })
                .ok_or_else(|| format!("no {} on PATH", names.join(" or ")))
        };
        let found =
            pick("CHATPAY_CHROMIUM", &["chromium", "chromium-browser"]).and_then(|chromium| {
                pick("CHATPAY_CHROMEDRIVER", &["chromedriver"]).map(|chromedriver| Browser {
                    chromium,
                    chromedriver,
                })
            });
        found.map_err(|why| {
            format!(
                "the browser tests need Chromium and chromedriver ({why}): on Debian, apt-get \
                 install chromium chromium-driver (./scripts/test.sh does), or set \
                 CHATPAY_TEST_BROWSER=skip to skip them"
            )
        })
    }
}

/// The chromedriver process this test binary started; killed (by its handle) when dropped.
pub struct Driver {
    child: std::sync::Mutex<Child>,
    pub url: String,
    chromium: PathBuf,
}

impl Driver {
    pub fn start(browser: &Browser) -> anyhow::Result<Driver> {
        // A free port, asked of the kernel (chromedriver takes a number, not a listener).
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(&browser.chromedriver)
            .arg(format!("--port={port}"))
            // No --allowed-ips: with it chromedriver listens on every interface; without it,
            // on loopback only.
            .arg("--log-level=WARNING")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", browser.chromedriver.display()))?;
        let driver = Driver {
            child: std::sync::Mutex::new(child),
            url: format!("http://127.0.0.1:{port}"),
            chromium: browser.chromium.clone(),
        };
        let deadline = Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = driver.child.lock().expect("driver lock").try_wait()? {
                bail!("chromedriver exited with {status}");
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not listen on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(driver)
    }

    /// A new browser window with a fresh profile, `width` × `height`; `phone` emulates a
    /// phone's screen (a headless window can't be narrower than 500 pixels otherwise).
    pub async fn session(
        &self,
        profile: &Path,
        width: u32,
        height: u32,
        phone: bool,
    ) -> anyhow::Result<Page> {
        let mut caps = Capabilities::new();
        let mut options = json!({
            "binary": self.chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--lang=en-US",
                "--force-device-scale-factor=1", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
                format!("--window-size={width},{height}"),
            ],
        });
        if phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0, "touch": true },
            });
        }
        caps.insert("goog:chromeOptions".to_owned(), options);
        caps.insert("goog:loggingPrefs".to_owned(), json!({ "browser": "ALL" }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .context("opening a browser session")?;
        Ok(Page { client })
    }
}

impl Driver {
    /// Ends the chromedriver this binary started (by its handle, nothing else).
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`): the browser console.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// One browser window and what journeys do with it.
pub struct Page {
    pub client: Client,
}

impl Page {
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))
    }

    pub async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        Ok(self.client.execute(script, args).await?)
    }

    /// Waits until `css` matches an element that is displayed.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(els) = self.client.find_all(Locator::Css(css)).await {
                for el in els {
                    if el.is_displayed().await.unwrap_or(false) {
                        return Ok(el);
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("nothing visible matches {css:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until an element matching `css` shows `text` (a substring); returns its text.
    pub async fn find_text(&self, css: &str, text: &str) -> anyhow::Result<Element> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            seen.clear();
            if let Ok(els) = self.client.find_all(Locator::Css(css)).await {
                for el in els {
                    let t = el.text().await.unwrap_or_default();
                    if t.contains(text) {
                        return Ok(el);
                    }
                    seen.push(t);
                }
            }
            if Instant::now() > deadline {
                bail!("no {css:?} shows {text:?}; seen: {seen:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `script` (a function body returning a value) returns something truthy.
    pub async fn until(&self, what: &str, script: &str) -> anyhow::Result<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let v = self.js(script, vec![]).await?;
            let truthy =
                !matches!(v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("");
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out waiting until {what} (last: {v})");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a window that is not among `before` (a link opened a tab).
    pub async fn until_window(
        &self,
        before: &[fantoccini::wd::WindowHandle],
    ) -> anyhow::Result<fantoccini::wd::WindowHandle> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let now = self.client.windows().await?;
            if let Some(w) = now.into_iter().find(|w| !before.contains(w)) {
                return Ok(w);
            }
            if Instant::now() > deadline {
                bail!("no new window opened");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css)
            .await?
            .click()
            .await
            .with_context(|| format!("clicking {css}"))?;
        Ok(())
    }

    /// Clicks the button or link inside `scope` whose text is `label`.
    pub async fn click_text(&self, scope: &str, label: &str) -> anyhow::Result<()> {
        let el = self
            .find_text(&format!("{scope} button, {scope} a"), label)
            .await?;
        el.click()
            .await
            .with_context(|| format!("clicking {label:?}"))?;
        Ok(())
    }

    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let el = self.find(css).await?;
        el.clear().await?;
        el.send_keys(text).await?;
        Ok(())
    }

    pub async fn hash(&self) -> anyhow::Result<String> {
        Ok(self
            .js("return location.hash", vec![])
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The browser console since the last call.
    pub async fn console(&self) -> String {
        match self.client.issue_cmd(BrowserLog).await {
            Ok(Value::Array(entries)) => entries
                .iter()
                .map(|e| {
                    format!(
                        "[{}] {}",
                        e["level"].as_str().unwrap_or(""),
                        e["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Ok(other) => other.to_string(),
            Err(e) => format!("(no console: {e})"),
        }
    }

    /// Console errors (severe entries) since the last call from chatpay's own page at `origin`
    /// (the sandbox's Stripe pages are not ours to judge).
    pub async fn console_errors(&self, origin: &str) -> Vec<String> {
        self.console()
            .await
            .lines()
            .filter(|l| l.starts_with("[SEVERE]") && l.contains(origin))
            .map(str::to_owned)
            .collect()
    }

    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.client.screenshot().await?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Saves what a failure needs to be understood: screenshot, HTML, console, URL.
    pub async fn save_failure(&self, dir: &Path) {
        let _ = std::fs::create_dir_all(dir);
        let _ = self.screenshot(&dir.join("screenshot.png")).await;
        let html = self.client.source().await.unwrap_or_default();
        let _ = std::fs::write(dir.join("page.html"), html);
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let console = self.console().await;
        let _ = std::fs::write(
            dir.join("console.txt"),
            format!("url: {url}\n\n{console}\n"),
        );
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }

    /// Presses keys on whatever has focus (the keyboard, not a click).
    pub async fn keys(&self, keys: &str) -> anyhow::Result<()> {
        self.client.active_element().await?.send_keys(keys).await?;
        Ok(())
    }

    /// Presses Tab until the focused element matches `css` (at most `max` presses).
    pub async fn tab_to(&self, css: &str, max: usize) -> anyhow::Result<()> {
        for _ in 0..max {
            if self
                .js(
                    "return document.activeElement && document.activeElement.matches(arguments[0])",
                    vec![json!(css)],
                )
                .await?
                == json!(true)
            {
                return Ok(());
            }
            self.keys(&fantoccini::key::Key::Tab).await?;
        }
        let at = self
            .js(
                "const e = document.activeElement; return e ? e.outerHTML.slice(0, 200) : null",
                vec![],
            )
            .await?;
        Err(anyhow!(
            "{max} Tab presses did not reach {css:?}; focus is on {at}"
        ))
    }

    /// Runs axe-core on the page; fails listing every serious or critical violation.
    pub async fn assert_accessible(&self, screen: &str) -> anyhow::Result<()> {
        const AXE: &str = include_str!("../assets/axe.min.js");
        let present = self
            .js("return typeof window.axe !== 'undefined'", vec![])
            .await?;
        if present != json!(true) {
            self.js(&format!("{AXE}\nreturn true;"), vec![]).await?;
        }
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                     nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary).slice(0, 5) }))))
                   .catch(e => done([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }]));",
                vec![],
            )
            .await?;
        let bad: Vec<&Value> = result
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        if !bad.is_empty() {
            bail!(
                "axe-core on {screen}: {} serious or critical violation(s):\n{}",
                bad.len(),
                serde_json::to_string_pretty(&bad)?
            );
        }
        Ok(())
    }
}
