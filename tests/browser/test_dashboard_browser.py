"""The live dashboard in a real browser: headless Chromium driven by Selenium through chromium-driver.

What a learner sees: the page loads with no console errors and shows every service healthy; a SIGKILLed
instance turns red on the open page within 3 s, with no reload (the issue's own bar: the process check
runs at every 1 s tick, so there are about two ticks to spare); without the API key there is no kill
button and the endpoint answers 401. Screenshots land in ``tests/browser/output/`` for people to look at.

Needs Debian's ``chromium`` and ``chromium-driver`` (``apt-get install chromium chromium-driver``), or
``LAB_CHROMIUM`` / ``LAB_CHROMEDRIVER`` pointing at a Chromium and its matching ChromeDriver. Without
them every test here is skipped with that message; ``make test`` never fails for want of a browser.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

import labkit
from labkit import procs

CHROMIUM = os.environ.get("LAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = os.environ.get("LAB_CHROMEDRIVER") or shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("browser tests need Chromium and ChromeDriver: `sudo apt-get install chromium chromium-driver` "
                "(Debian/Ubuntu), or set LAB_CHROMIUM and LAB_CHROMEDRIVER", allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only once we know there is a browser to drive
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

OUTPUT = Path(__file__).parent / "output"
SERVICES = ("gateway", "customer", "policy", "claims")


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--disable-gpu"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, settings):
    """The dashboard freshly opened, without a key, once its first snapshot is drawn."""
    browser.get(settings.url_of("dashboard") + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(settings.url_of("dashboard") + "/")
    WebDriverWait(browser, 30).until(lambda d: count(d, ".card[data-service]"))
    return browser


def health_of(driver, css: str) -> str | None:
    """Read in the page in one step: the page redraws every second, so an element found now may be gone next."""
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.dataset.health : null;",
                                 css)


def count(driver, css: str) -> int:
    return driver.execute_script("return document.querySelectorAll(arguments[0]).length", css)


def screenshot(driver, name: str) -> Path:
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def test_page_loads_without_console_errors_and_shows_the_services_healthy(page, api):
    for round_ in range(4):  # a little traffic, so the screenshot shows the hit-rate lines moving
        for n in range(1, 21):
            api.get(f"/api/policies/POL-{n:06d}", headers={"Cache-Control": "no-cache"})
        time.sleep(1)
    WebDriverWait(page, 30).until(
        lambda d: all(health_of(d, f'.card[data-service="{name}"]') == "healthy" for name in SERVICES),
        "the four services healthy on the page")
    assert page.find_element(By.ID, "connection").get_attribute("data-state") == "live"
    errors = [entry for entry in page.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors
    assert screenshot(page, "dashboard.png").stat().st_size > 10_000


def test_a_killed_instance_turns_unhealthy_within_3_s_without_a_reload(page, settings):
    labkit.scale("claims", 2, settings)
    try:
        row = 'tr[data-name="claims#2"]'
        WebDriverWait(page, 30).until(lambda d: health_of(d, row) == "healthy", "claims#2 healthy on the page")
        page.execute_script("window.stillTheSamePage = true")
        pid = procs.read_pidfiles(settings.run_dir)["claims#2"].pid
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        WebDriverWait(page, 3, poll_frequency=0.05).until(
            lambda d: health_of(d, row) in ("down", "unhealthy"), "claims#2 unhealthy within 3 s")
        print(f"claims#2 shown {health_of(page, row)} {time.monotonic() - killed_at:.2f} s after SIGKILL")
        assert page.execute_script("return window.stillTheSamePage") is True, "the page must not have reloaded"
        assert health_of(page, 'tr[data-name="claims"]') == "healthy"
        screenshot(page, "dashboard-instance-killed.png")
    finally:
        labkit.scale("claims", 1, settings)


def test_without_the_key_no_kill_button_and_the_endpoint_answers_401(page, settings):
    assert count(page, 'tr[data-name="claims"]') == 1 and count(page, 'button[data-action="kill"]') == 0
    status = page.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch("actions/kill", {method: "POST", headers: {"Content-Type": "application/json"},
                               body: JSON.stringify({instance: "claims"})}).then((r) => done(r.status));
    """)
    assert status == 401
    assert labkit.status(settings).healthy, "the refused kill killed nothing"
    page.find_element(By.ID, "api-key").send_keys(settings.api_key())
    page.find_element(By.CSS_SELECTOR, "#unlock button").click()
    WebDriverWait(page, 10).until(lambda d: count(d, 'button[data-action="kill"]'),
                                  "the kill buttons once the key is given")
    screenshot(page, "dashboard-actions-unlocked.png")
    page.execute_script("sessionStorage.clear()")
