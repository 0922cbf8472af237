"""/docs and /redoc in headless Chromium, with every host but 127.0.0.1 unreachable; and a page
of another origin allowed by HEROAPI_CORS_ORIGINS reading a list's headers.

heroapi serves the Swagger UI and ReDoc assets itself (src/heroapi/docs.py); these tests prove the
pages work without the Internet, and that they do not even try to reach a CDN: every URL the page
requested is read from Chromium's performance log and must be on heroapi's own origin. They also
prove the pages' Content-Security-Policy allows all they need (Chromium's console reports no
violation) and is enforced (a script injected into the page does not run).
"""

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx2 as httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests.server import LiveServer, free_port, live_server

pytestmark = pytest.mark.processes  # heroapi servers and Chromium

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_SECONDS = 30
# URLs of these schemes are made inside the page and never reach a network.
LOCAL_SCHEMES = ("data:", "blob:")

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1280,1600",
    # Containers often have a tiny /dev/shm, and Debian's launcher does not always notice.
    "--disable-dev-shm-usage",
    # An offline machine, on any machine: a CDN request still shows in the performance log, but
    # fails here instead of leaving the host, so the page can only render from heroapi's assets.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--no-proxy-server",
]


@pytest.fixture(scope="module")
def browser_installed() -> None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if not missing:
        return
    # CI must not go green by skipping the only proof that the docs work offline.
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f"Chromium not installed ({', '.join(missing)} missing) and CI=true needs the "
            "browser tests: run scripts/ensure-test-packages first (CI=true make test does)"
        )
    pytest.skip(
        f"Chromium not installed ({', '.join(missing)} missing; run scripts/ensure-test-packages, "
        "or CI=true make test installs it): browser tests skipped"
    )


@pytest.fixture(scope="module")
def server(
    browser_installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    # Requests browser_installed so that a skip comes before a server is started for nothing.
    directory = tmp_path_factory.mktemp("browser")
    with live_server(f"sqlite:///{directory / 'docs.db'}", directory) as live:
        yield live


@dataclass
class Browser:
    driver: webdriver.Chrome
    server: LiveServer
    wait: WebDriverWait[webdriver.Chrome]
    requested: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def open(self, path: str) -> None:
        self.driver.get(f"{self.server.url}{path}")

    def until(self, what: str, condition: Callable[[webdriver.Chrome], T | Literal[False]]) -> T:
        try:
            return self.wait.until(condition)
        except TimeoutException:
            # Selenium's own message is empty; what the page fetched usually tells why it stalled.
            self.collect_requests()
            raise AssertionError(
                f"{what}: not within {WAIT_SECONDS} s; the page requested {self.requested}"
            ) from None

    def click_when_shown(self, parent: WebElement, css_selector: str) -> None:
        def shown(_: webdriver.Chrome) -> WebElement | Literal[False]:
            for element in parent.find_elements(By.CSS_SELECTOR, css_selector):
                if element.is_displayed() and element.is_enabled():
                    return element
            return False

        # Swagger UI renders each control only after the previous click's state change.
        self.until(f"{css_selector} shown", shown).click()

    def collect_requests(self) -> int:
        """Add the URLs requested since the last call, sent or not; return how many."""
        # Selenium leaves get_log unannotated.
        entries: list[dict[str, Any]] = self.driver.get_log("performance")  # type: ignore[no-untyped-call]
        before = len(self.requested)
        for entry in entries:
            message = json.loads(entry["message"])["message"]
            if message["method"] != "Network.requestWillBeSent":
                continue
            # Chromium starts on its own new-tab page, which may still be loading its chrome://
            # resources (from the browser binary, never the network) when the test navigates.
            if message["params"]["documentURL"].startswith("chrome:"):
                continue
            self.requested.append(message["params"]["request"]["url"])
        return len(self.requested) - before

    def collect_console(self) -> None:
        """Add the console messages logged since the last call."""
        entries: list[dict[str, Any]] = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        self.console += [entry["message"] for entry in entries]

    def assert_no_policy_violation(self) -> None:
        """The page's Content-Security-Policy refused nothing it did (Chromium logs each refusal
        to the console, naming the policy)."""
        self.collect_console()
        violations = [line for line in self.console if "Content Security Policy" in line]
        assert not violations, f"the page broke its Content-Security-Policy: {violations}"

    def assert_injected_script_blocked(self) -> None:
        """An inline script added to the page does not run: the policy is in force."""
        ran = self.driver.execute_script(
            "const script = document.createElement('script');"
            "script.textContent = 'window.injected = true';"
            "document.body.append(script);"
            "return window.injected === true;"
        )
        assert ran is False, "an injected inline script ran: no Content-Security-Policy in force"

    def assert_stayed_local(self, *expected_paths: str, quiet: float = 0.5) -> None:
        """Every URL the page requested is on the server's origin, these paths among them."""
        # A page goes on requesting after it looks rendered (fonts once text is laid out, images
        # once React mounts them), so wait until it has requested nothing for `quiet` seconds.
        deadline = time.monotonic() + WAIT_SECONDS
        last_request = time.monotonic()
        while time.monotonic() - last_request < quiet:
            assert time.monotonic() < deadline, f"the page kept requesting: {self.requested}"
            time.sleep(0.1)
            if self.collect_requests():
                last_request = time.monotonic()

        # A prefix of "http://127.0.0.1:80" alone would also accept port 8000.
        origin = f"{self.server.url}/"
        elsewhere = [url for url in self.requested if not url.startswith((origin, *LOCAL_SCHEMES))]
        assert not elsewhere, f"the page requested URLs off {origin}: {elsewhere}"
        # An empty or partial log would pass the check above without proving anything.
        for path in expected_paths:
            assert any(url.split("?")[0] == f"{self.server.url}{path}" for url in self.requested), (
                f"{path} not among the requested URLs: {self.requested}"
            )


@contextmanager
def chromium(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    # An explicit driver path keeps Selenium Manager from downloading a driver or a browser.
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(WAIT_SECONDS)
        driver.set_script_timeout(WAIT_SECONDS)
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(server: LiveServer, tmp_path: Path) -> Iterator[Browser]:
    with chromium(tmp_path) as driver:
        yield Browser(driver, server, WebDriverWait(driver, WAIT_SECONDS))


def test_swagger_ui_executes_a_request_offline(browser: Browser) -> None:
    browser.open("/docs")
    # By method and path rather than by element id, which depends on the operation's tag.
    operation = browser.until(
        "the GET /heroes/ operation rendered",
        expected_conditions.visibility_of_element_located(
            (
                By.XPATH,
                "//div[contains(concat(' ', @class, ' '), ' opblock-get ')]"
                "[.//*[@data-path='/heroes/']]",
            )
        ),
    )
    operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    browser.click_when_shown(operation, "button.try-out__btn")
    browser.click_when_shown(operation, "button.execute")
    status = browser.until(
        "Execute showed the live response",
        lambda _: operation.find_element(
            By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"
        ),
    )
    assert status.text.strip() == "200"

    browser.assert_stayed_local(
        "/docs",
        "/static/docs/swagger-ui-bundle.js",
        "/static/docs/swagger-ui.css",
        "/openapi.json",
        "/heroes/",
    )
    browser.assert_no_policy_violation()
    browser.assert_injected_script_blocked()


def test_redoc_renders_offline(browser: Browser) -> None:
    browser.open("/redoc")
    browser.until(
        "ReDoc rendered the Read Heroes operation",
        expected_conditions.visibility_of_element_located(
            (By.XPATH, "//h2[normalize-space()='Read Heroes']")
        ),
    )
    browser.assert_stayed_local("/redoc", "/static/docs/redoc.standalone.js", "/openapi.json")
    browser.assert_no_policy_violation()
    browser.assert_injected_script_blocked()


def test_oauth2_redirect_page_runs_its_script(browser: Browser) -> None:
    browser.open("/docs/oauth2-redirect")

    def script_ran(_: webdriver.Chrome) -> bool:
        # Opened by hand, not by Swagger UI's login window, the script finds no window.opener:
        # its error shows it ran (a script the policy refused would log a violation instead).
        browser.collect_console()
        return any("swaggerUIRedirectOauth2" in line for line in browser.console)

    browser.until("the redirect page's script ran", script_ran)
    browser.assert_no_policy_violation()


@contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """`directory` served on a loopback port of its own: another origin than heroapi's."""

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}"
    finally:
        site.shutdown()
        site.server_close()
        thread.join(10)


# Run in the page: the page's own fetch of another origin, and what its script can read.
READ_ACROSS_ORIGINS = """
const [url, done] = [arguments[0], arguments[arguments.length - 1]];
fetch(url, {headers: {"Prefer": "count=exact"}})
  .then(async (response) => done({
    status: response.status,
    body: await response.json(),
    headers: Object.fromEntries(
      ["Link", "X-Total-Count", "Preference-Applied", "X-Request-ID"]
        .map((name) => [name, response.headers.get(name)])),
  }))
  .catch((error) => done({error: String(error)}));
"""


# A client past its limit: what the page can read of the 429 (a bounded number of tries).
READ_A_REFUSAL = """
const [url, done] = [arguments[0], arguments[arguments.length - 1]];
const form = new URLSearchParams({username: "nobody@example.com", password: "not-this-one"});
(async () => {
  for (let attempt = 0; attempt < 5; attempt++) {
    const response = await fetch(url, {method: "POST", body: form});
    if (response.status === 429) {
      return Object.fromEntries(
        ["Retry-After", "RateLimit", "RateLimit-Policy"]
          .map((name) => [name, response.headers.get(name)]));
    }
  }
  return {error: "no 429 in 5 tries"};
})().then(done, (error) => done({error: String(error)}));
"""


def test_a_page_of_an_allowed_origin_reads_the_documented_headers(
    browser_installed: None, tmp_path: Path
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<!doctype html><title>app</title>")
    with static_site(tmp_path / "site") as origin:
        # Written as a user may copy it from the address bar, trailing slash included.
        # One failed login per address: the page meets a 429 at its second try.
        settings = {"cors_origins": f"{origin}/", "login_failures_per_address": "1"}
        settings |= {"throttle_hold": "0"}
        database = f"sqlite:///{tmp_path / 'cors.db'}"
        with live_server(database, tmp_path, settings=settings, port=free_port()) as api:
            for name in ("Deadpond", "Rusty-Man"):
                hero = {"name": name, "secret_name": "x"}
                assert httpx.post(f"{api.url}/heroes/", json=hero, timeout=10).status_code == 200
            with chromium(tmp_path) as driver:
                driver.get(f"{origin}/index.html")
                answer = driver.execute_async_script(
                    READ_ACROSS_ORIGINS, f"{api.url}/heroes/?limit=1"
                )
                refused = driver.execute_async_script(
                    READ_A_REFUSAL, f"{api.url}/login/access-token"
                )
    assert "error" not in answer, answer
    assert answer["status"] == 200
    assert [hero["name"] for hero in answer["body"]] == ["Deadpond"]
    headers = answer["headers"]
    assert headers["X-Total-Count"] == "2"
    assert headers["Preference-Applied"] == "count=exact"
    assert 'rel="next"' in headers["Link"]
    assert headers["X-Request-ID"]
    assert "error" not in refused, refused
    assert int(refused["Retry-After"]) > 0
    assert refused["RateLimit-Policy"].startswith('"login-address";q=1;')
    assert refused["RateLimit"].startswith('"login-address";r=0;')
