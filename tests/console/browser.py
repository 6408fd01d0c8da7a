"""Headless Chromium from Debian's packages, driven by Selenium from async tests.

Selenium's calls block, and the gateway under test runs on the test's event loop: every
browser action runs in a thread. The browser and its driver are the system's
(/usr/bin/chromium, /usr/bin/chromedriver), given by path, so Selenium Manager never
runs and nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path(os.environ.get("TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")

T = TypeVar("T")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return (f"{path} is missing: install Debian's {package} (`make test` does, as "
                    "root: apt-get install chromium chromium-driver)")
    return None


class Browser:
    """One headless Chromium with a fresh profile; every call awaits a thread."""

    def __init__(self, width: int = 1280, height: int = 800) -> None:
        self.profile = tempfile.mkdtemp(prefix="pbxsms-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_argument(f"--window-size={width},{height}")
        self.driver = webdriver.Chrome(options=options,
                                       service=Service(executable_path=str(CHROMEDRIVER)))

    @classmethod
    async def open(cls, width: int = 1280, height: int = 800) -> Browser:
        return await asyncio.to_thread(cls, width, height)

    async def run(self, action: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(action, *args)

    async def get(self, url: str) -> None:
        await self.run(self.driver.get, url)

    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    async def find(self, css: str) -> WebElement:
        return await self.run(self.driver.find_element, By.CSS_SELECTOR, css)

    async def type(self, css: str, text: str) -> None:
        element = await self.find(css)
        await self.run(element.clear)
        await self.run(element.send_keys, text)

    async def click(self, css: str) -> None:
        await self.run((await self.find(css)).click)

    async def text(self, css: str) -> str:
        return str(await self.run(lambda: self.driver.find_element(By.CSS_SELECTOR, css).text))

    async def wait_for(self, condition: Callable[[webdriver.Chrome], Any],
                       timeout: float = 10.0, message: str = "") -> Any:
        """Until `condition(driver)` is truthy (polled in the browser's thread)."""
        # Live pages replace elements while a condition looks at them.
        wait = WebDriverWait(self.driver, timeout, poll_frequency=0.05, ignored_exceptions=(
            StaleElementReferenceException, NoSuchElementException))
        return await self.run(wait.until, condition, message)

    async def sign_in(self, base: str, name: str, password: str) -> None:
        await self.get(f"{base}/console/login")
        await self.type("#name", name)
        await self.type("#password", password)
        await self.click("#sign-in")
        await self.wait_for(lambda d: "/console/login" not in d.current_url,
                            message="signed in")

    async def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.run(self.driver.save_screenshot, str(path))

    async def close(self) -> None:
        await self.run(self.driver.quit)
        shutil.rmtree(self.profile, ignore_errors=True)
