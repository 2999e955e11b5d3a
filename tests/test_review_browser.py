"""The review page in a real browser: headless Chromium (Debian's chromium and chromium-driver packages)
opens the generated site from file:// and is clicked and typed into like a user would.

Skipped, saying what to install, when the browser, its driver or selenium is missing. ``.ci/run``
installs the browser on a fresh Debian machine when run as root. Set REVIEW_SCREENSHOT=FILE
to save a screenshot of the page (docs/review.png is made that way).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from review_project import EXPECTED, SCRIPT_PROMPT, make_project

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = ("the browser tests need Debian's chromium and chromium-driver (`apt-get install chromium "
           "chromium-driver`, as root; .ci/run does it) and selenium (`pip install -e '.[dev]'`)")


def _webdriver() -> Any:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(INSTALL)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip(INSTALL)
    return webdriver, Service


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    webdriver, service = _webdriver()
    profile = tempfile.mkdtemp(prefix="assetbuild-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1280,900"):
        options.add_argument(flag)
    # An explicit driver path: selenium-manager never looks for (or downloads) a browser.
    driver = webdriver.Chrome(service=service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The review site of the review project since main."""
    root = make_project(tmp_path_factory.mktemp("review-browser") / "proj")
    result = run_cli(root, "review", "--since", "main")
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip())


@pytest.fixture
def opened(browser: Any, page: Path) -> Any:
    browser.get(page.as_uri())
    return browser


def wait(driver: Any, condition: Any, timeout: float = 30) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def cards_in(driver: Any, group: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, f'section[data-group="{group}"] .card')


def test_every_thumbnail_loads(opened: Any) -> None:
    from selenium.webdriver.common.by import By

    thumbs = opened.find_elements(By.CSS_SELECTOR, "a.thumb img")
    # Every card's picture: one per card, two for a changed card with new bytes (before and after).
    assert len(thumbs) >= sum(len(v) for v in EXPECTED.values())
    for image in thumbs:  # lazy loading: each loads once it is scrolled near
        opened.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)
        wait(opened, lambda d, img=image: d.execute_script("return arguments[0].complete", img))
        assert opened.execute_script("return arguments[0].naturalWidth", image) > 0, image.get_attribute("src")
    shot = os.environ.get("REVIEW_SCREENSHOT")
    if shot:  # docs/review.png: the top of the page, one changed asset in slider mode
        opened.execute_script("window.scrollTo(0, 0)")
        card = opened.find_element(By.CSS_SELECTOR, '.card[data-target="sprites/slime.png"]')
        card.find_element(By.CSS_SELECTOR, 'button[data-mode="slider"]').click()
        opened.execute_script("window.scrollTo(0, 0)")
        opened.save_screenshot(shot)


def test_counts_per_group(opened: Any) -> None:
    from selenium.webdriver.common.by import By

    for group, targets in EXPECTED.items():
        section = opened.find_element(By.ID, f"group-{group}")
        shown = section.find_element(By.CSS_SELECTOR, "h2 .count").text
        assert shown == str(len(targets)), group
        assert {c.get_attribute("data-target") for c in cards_in(opened, group)} == targets
    variants = opened.find_element(By.CSS_SELECTOR, 'section[data-group="unchanged"] .variants')
    assert "trees/oak_{n}.png" in variants.text and len(variants.find_elements(By.CSS_SELECTOR, ".card")) == 3


def test_state_filter_hides_cards(opened: Any) -> None:
    from selenium.webdriver.common.by import By

    fresh = opened.find_element(By.CSS_SELECTOR, '.state-filter input[value="fresh"]')
    all_cards = opened.find_elements(By.CSS_SELECTOR, ".card")
    assert all(card.is_displayed() for card in all_cards[:3])
    fresh.click()
    for card in all_cards:
        state = card.get_attribute("data-state")
        opened.execute_script("arguments[0].scrollIntoView({block: 'center'})", card) if state != "fresh" else None
        assert card.is_displayed() == (state != "fresh"), card.get_attribute("data-target")
    visible = [c.get_attribute("data-target") for c in all_cards if c.get_attribute("data-state") != "fresh"]
    assert sorted(visible) == ["old/gone.png", "ui/icon.png"]
    assert opened.find_element(By.ID, "shown").text == "2"
    fresh.click()
    assert all(card.get_attribute("hidden") is None for card in all_cards)


def test_text_filter(opened: Any) -> None:
    from selenium.webdriver.common.by import By

    opened.find_element(By.ID, "q").send_keys("oak")
    shown = [c.get_attribute("data-target") for c in opened.find_elements(By.CSS_SELECTOR, ".card")
             if c.get_attribute("hidden") is None]
    assert shown == ["trees/oak_1.png", "trees/oak_2.png", "trees/oak_3.png"]


def test_slider_and_onion_skin_move(opened: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    card = opened.find_element(By.CSS_SELECTOR, '.card[data-target="sprites/hero.png"]')
    opened.execute_script("arguments[0].scrollIntoView({block: 'center'})", card)
    card.find_element(By.CSS_SELECTOR, 'button[data-mode="slider"]').click()
    slider = card.find_element(By.CSS_SELECTOR, "input.slider")
    after = card.find_element(By.CSS_SELECTOR, ".stage img.after")
    assert slider.is_displayed() and slider.get_attribute("value") == "50"
    assert "50%" in after.value_of_css_property("clip-path")
    slider.send_keys(Keys.RIGHT * 10)
    assert slider.get_attribute("value") == "60"
    assert "60%" in after.value_of_css_property("clip-path")
    card.find_element(By.CSS_SELECTOR, 'button[data-mode="onion"]').click()
    slider.send_keys(Keys.HOME)
    assert slider.get_attribute("value") == "0"
    assert after.value_of_css_property("opacity") == "0"
    assert "% of pixels changed" in card.text


def test_script_prompt_is_shown_as_text(opened: Any) -> None:
    from selenium.webdriver.common.by import By

    card = opened.find_element(By.CSS_SELECTOR, '.card[data-target="sprites/slime.png"]')
    opened.execute_script("arguments[0].scrollIntoView({block: 'center'})", card)
    assert card.find_element(By.CSS_SELECTOR, "dd.f-prompt").text == SCRIPT_PROMPT
    assert "<script>window.__pwned = 1</script>" in card.find_element(By.CSS_SELECTOR, "ul.why").text
    assert opened.execute_script("return window.__pwned") is None
    assert len(opened.find_elements(By.TAG_NAME, "script")) == 1


def test_click_shows_the_full_size_image(opened: Any) -> None:
    from selenium.webdriver.common.by import By

    link = opened.find_element(By.CSS_SELECTOR, '.card[data-target="ui/new.png"] a.thumb')
    opened.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()
    box = opened.find_element(By.ID, "lightbox")
    assert box.is_displayed()
    big = box.find_element(By.TAG_NAME, "img")
    wait(opened, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", big))
    assert opened.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", big) == [320, 200]
    box.click()
    assert not box.is_displayed()


@pytest.fixture(scope="module")
def big_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site of 1,000 cards, each with its own small image (made directly: no build needed)."""
    import io

    from PIL import Image

    from assetbuild.keys import hash_bytes
    from assetbuild.review import data, site

    cards = []
    for i in range(1000):
        buffer = io.BytesIO()
        Image.new("RGB", (48, 48), (i % 256, (i // 256) * 60, 128)).save(buffer, "PNG")
        raw = buffer.getvalue()
        image = data.ImageRef(hash_bytes(raw), ".png", len(raw), data=raw)
        cards.append(data.Card(target=f"set{i % 10}/{i:04d}.png", state="stale" if i % 7 == 0 else "fresh",
                               label="fresh", reason="", prompt=f"asset number {i}", image=image))
    return site.write(data.Review("big", cards), tmp_path_factory.mktemp("big") / "site").index


def test_a_thousand_cards_load_lazily_and_filter(browser: Any, big_page: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(big_page.as_uri())
    assert len(browser.find_elements(By.CSS_SELECTOR, ".card")) == 1000
    count_loaded = "return [].filter.call(document.images, i => i.complete && i.naturalWidth > 0).length"
    loaded = browser.execute_script(count_loaded)
    assert 0 < loaded < 500  # only the cards near the viewport
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    last = browser.find_elements(By.CSS_SELECTOR, ".card img")[-1]
    wait(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", last))
    browser.find_element(By.ID, "q").send_keys("number 999")
    assert browser.find_element(By.ID, "shown").text == "1"
