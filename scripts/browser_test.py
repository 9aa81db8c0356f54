#!/usr/bin/env python3
"""End-to-end test of Lookalike's web page in a real browser: Debian's headless Chromium driven by
Selenium (pinned in scripts/setup.sh) through Debian's chromium-driver. Test helper only: the
product never needs Python.

Run by Tests/ServerTests/BrowserTests.swift against `lookalike serve` on a small library:
load the page, click a gallery image and see results, click a result and see new results, go back,
press Random, upload an image and see results, upload a text file and see the error in words. Saves
screenshots of the results view (desktop and phone sizes) and of the error. Exit status 0 when
every step passed; otherwise the failing step is printed.
"""
import argparse
import os
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="server URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--upload", required=True, help="an image file to upload")
    parser.add_argument("--screenshots", default="out/screenshots", help="folder for the screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--driver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)

    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1366,900",
                 "--hide-scrollbars"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=args.driver))
    wait = WebDriverWait(driver, 30)
    step = "start"

    def css(selector):
        return driver.find_elements(By.CSS_SELECTOR, selector)

    def results_ready(expect_query=None):
        def check(_):
            if not css("#view-results:not([hidden])") or css("#loading:not([hidden])"):
                return False
            items = css("#results-grid li.result")
            if not items:
                return False
            if expect_query and expect_query not in driver.current_url:
                return False
            return items
        return check

    def result_ids():
        return [a.get_attribute("data-id") for a in css("#results-grid li.result a.tile")]

    def upload(path):
        field = driver.find_element(By.ID, "file-input")
        # A hidden file input cannot take keys: show it for the moment it takes the path.
        driver.execute_script("arguments[0].hidden = false;", field)
        field.send_keys(os.path.abspath(path))
        driver.execute_script("arguments[0].hidden = true;", field)

    try:
        step = "load the page and see the gallery"
        driver.get(args.base + "/")
        wait.until(lambda _: len(css("#gallery-grid a.tile img")) >= 10)
        wait.until(lambda _: driver.execute_script(
            "return [...document.querySelectorAll('#gallery-grid img')].slice(0, 6).every(i => i.complete && i.naturalWidth > 0)"))
        tiles = css("#gallery-grid a.tile")
        print(f"gallery: {len(tiles)} thumbnails")

        step = "click a gallery image and see results"
        first = tiles[3]
        first_id = first.get_attribute("data-id")
        first.click()
        wait.until(results_ready(f"id={first_id}"))
        ids = result_ids()
        assert first_id not in ids, "the query image is among its own results"
        timing = driver.find_element(By.ID, "query-timing").text
        assert "results in" in timing, f"no timing shown: {timing!r}"
        print(f"search id={first_id}: {len(ids)} results ({timing})")

        step = "click a result and see new results"
        second = css("#results-grid li.result a.tile")[2]
        second_id = second.get_attribute("data-id")
        second.click()
        wait.until(results_ready(f"id={second_id}"))
        wait.until(lambda _: result_ids() != ids)
        print(f"search id={second_id}: {len(result_ids())} results")

        step = "go back to the previous search"
        driver.back()
        wait.until(results_ready(f"id={first_id}"))
        wait.until(lambda _: result_ids() == ids)
        print("back: previous results shown again")

        step = "press Random"
        before = driver.current_url
        driver.find_element(By.ID, "random-button").click()
        wait.until(lambda _: driver.current_url != before and "id=" in driver.current_url)
        wait.until(results_ready())
        print(f"random: {driver.current_url.split('?')[1]}")

        step = "upload an image and see results"
        upload(args.upload)
        wait.until(lambda _: "upload=1" in driver.current_url)
        wait.until(results_ready("upload=1"))
        wait.until(lambda _: os.path.basename(args.upload) in driver.find_element(By.ID, "results-title").text)
        wait.until(lambda _: driver.execute_script(
            "return [...document.querySelectorAll('#results-grid img')].every(i => i.complete && i.naturalWidth > 0)"
            " && document.getElementById('query-image').complete"))
        labels = [e.text for e in css("#results-grid .label")]
        print(f"upload {os.path.basename(args.upload)}: {len(labels)} results, labels {sorted(set(labels))}")

        step = "draw a box on the query image and see results for the region"
        before_scores = [e.text for e in css("#results-grid .score")]
        frame = driver.find_element(By.ID, "query-image")
        w, h = frame.rect["width"], frame.rect["height"]
        (ActionChains(driver).move_to_element_with_offset(frame, int(-w * 0.3), int(-h * 0.3)).click_and_hold()
         .move_by_offset(int(w * 0.25), int(h * 0.25)).move_by_offset(int(w * 0.25), int(h * 0.25)).release().perform())
        wait.until(lambda _: css("#clear-box:not([hidden])") and css("#query-box:not([hidden])"))
        wait.until(results_ready())
        wait.until(lambda _: [e.text for e in css("#results-grid .score")] != before_scores)
        wait.until(lambda _: driver.execute_script(
            "return [...document.querySelectorAll('#results-grid img')].every(i => i.complete && i.naturalWidth > 0)"))
        print(f"box search: {len(result_ids())} results for the region")
        time.sleep(0.3)
        driver.save_screenshot(os.path.join(args.screenshots, "results.png"))

        step = "results on a phone-sized screen"
        driver.set_window_size(390, 844)
        time.sleep(0.5)
        driver.save_screenshot(os.path.join(args.screenshots, "results-phone.png"))
        driver.set_window_size(1366, 900)

        step = "upload a text file and see the error in words"
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
            handle.write("This is a shopping list, not a photo.\n")
            text_file = handle.name
        upload(text_file)
        wait.until(lambda _: css("#alert:not([hidden])"))
        message = driver.find_element(By.ID, "alert").text
        assert "not an image" in message, f"unexpected error text: {message!r}"
        print(f"text upload: {message!r}")
        driver.save_screenshot(os.path.join(args.screenshots, "error.png"))

        step = "open the gallery again"
        driver.get(args.base + "/")
        wait.until(lambda _: len(css("#gallery-grid a.tile img")) >= 10)
        wait.until(lambda _: driver.execute_script(
            "return [...document.querySelectorAll('#gallery-grid img')].slice(0, 24).every(i => i.complete && i.naturalWidth > 0)"))
        driver.save_screenshot(os.path.join(args.screenshots, "gallery.png"))
        print("browser test: every step passed")
        return 0
    except (TimeoutException, AssertionError, Exception) as error:  # noqa: B902 - report any failure with its step
        print(f"browser test FAILED at step '{step}': {type(error).__name__}: {error}", file=sys.stderr)
        try:
            driver.save_screenshot(os.path.join(args.screenshots, "failure.png"))
            logs = driver.get_log("browser")
            for entry in logs[-10:]:
                print(f"console: {entry.get('message')}", file=sys.stderr)
        except Exception:  # noqa: BLE001
            pass
        return 1
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
