//! The web chat view in a real browser: headless Chromium driven over WebDriver (fantoccini)
//! through the journeys a person takes, against the real server on port 0 with its Stripe
//! sandbox. One test per journey (libtest-mimic), sharing one chromedriver; each journey has
//! its own server, sandbox, database and browser profile.
//!
//! Without Chromium and chromedriver the tests fail saying so; `CHATPAY_TEST_BROWSER=skip`
//! skips them. A failing journey saves a screenshot, the page and the browser console under
//! `target/browser-failures/<journey>/`. Screenshots of the main screens are written to
//! `target/browser-screenshots/` on every run, and to `docs/screenshots/` with
//! `CHATPAY_SCREENSHOTS=1`.

mod driver;
mod journeys;
mod world;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Arguments, Failed, Trial};

use driver::{Browser, Driver, Page};
use world::World;

pub type Run<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;
pub type JourneyFn = for<'a> fn(&'a mut Journey) -> Run<'a>;

/// Laptop and phone window sizes.
pub const LAPTOP: (u32, u32) = (1280, 860);
pub const PHONE: (u32, u32) = (390, 844);

/// One journey's world and browser windows.
pub struct Journey {
    pub name: &'static str,
    pub world: World,
    pub pages: Vec<Page>,
    driver: Arc<Driver>,
    profiles: tempfile::TempDir,
}

impl Journey {
    pub fn page(&self) -> &Page {
        &self.pages[0]
    }

    /// Another browser (its own profile, so its own session storage), e.g. a second tab.
    pub async fn open_browser(&mut self, (w, h): (u32, u32)) -> anyhow::Result<usize> {
        let profile = self.profiles.path().join(format!("p{}", self.pages.len()));
        std::fs::create_dir_all(&profile)?;
        let phone = (w, h) == PHONE;
        self.pages
            .push(self.driver.session(&profile, w, h, phone).await?);
        Ok(self.pages.len() - 1)
    }

    /// A screenshot of the main screen `name` (see the module docs for where it goes).
    pub async fn shot(&self, page: usize, name: &str) -> anyhow::Result<()> {
        let file = format!("{name}.png");
        let target = target_dir().join("browser-screenshots").join(&file);
        self.pages[page].screenshot(&target).await?;
        if std::env::var("CHATPAY_SCREENSHOTS").as_deref() == Ok("1") {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
            std::fs::create_dir_all(&docs)?;
            std::fs::copy(&target, docs.join(&file))?;
        }
        Ok(())
    }
}

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
}

static DRIVER: OnceLock<Result<Arc<Driver>, String>> = OnceLock::new();

fn driver() -> Result<Arc<Driver>, String> {
    DRIVER
        .get_or_init(|| {
            let browser = Browser::find()?;
            Driver::start(&browser)
                .map(Arc::new)
                .map_err(|e| format!("starting chromedriver: {e:#}"))
        })
        .clone()
}

fn play(name: &'static str, with_token: bool, journey: JourneyFn) -> Result<(), Failed> {
    let driver = driver()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let world = World::start(with_token)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let profiles = tempfile::tempdir()?;
        let mut j = Journey {
            name,
            world,
            pages: Vec::new(),
            driver,
            profiles,
        };
        let result = match j.open_browser(LAPTOP).await {
            Ok(_) => journey(&mut j).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            let dir = target_dir()
                .join("browser-failures")
                .join(name.replace('/', "_"));
            for (i, page) in j.pages.iter().enumerate() {
                page.save_failure(&dir.join(format!("window-{i}"))).await;
            }
            eprintln!(
                "{name}: failed; screenshot and console in {}: {e:#}",
                dir.display()
            );
        }
        for page in j.pages.drain(..) {
            page.close().await;
        }
        j.world.close().await;
        result.map_err(|e| Failed::from(format!("{e:#}")))
    })
}

fn main() {
    let mut args = Arguments::from_args();
    // Each journey runs a browser, a server and a sandbox: two at a time on two cores.
    if args.test_threads.is_none() {
        args.test_threads = Some(2);
    }
    let skip = std::env::var("CHATPAY_TEST_BROWSER").as_deref() == Ok("skip");
    let trials = journeys::ALL
        .iter()
        .map(|&(name, with_token, f)| {
            Trial::test(name, move || play(name, with_token, f)).with_ignored_flag(skip)
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // The shared chromedriver is stopped by its handle before exiting.
    if let Some(Ok(d)) = DRIVER.get() {
        d.stop();
    }
    conclusion.exit();
}
