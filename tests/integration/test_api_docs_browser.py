"""/docs as a person uses it: Debian's Chromium, headless, opens Swagger UI,
finds every documented operation, authorises with a real token and runs
"Try it out" on GET /auth/me. A screenshot is kept beside the test logs."""
import os
import shutil
import tempfile

import pytest

from tests.conftest import STATE_DIR

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("Debian's chromium and chromium-driver are needed (make test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,2400", "--user-data-dir=" + tempfile.mkdtemp(prefix="chromium-")):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def test_docs_list_every_operation_and_try_it_out_works(api, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    user = api.register()
    document = api.get("/openapi.json").json()
    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}

    browser.get(api.base_url + "/docs/")
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
    listed = {
        (block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
         block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"))
        for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")
    }
    assert listed == documented

    browser.find_element(By.CSS_SELECTOR, ".auth-wrapper .authorize").click()
    token_input = wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux input")))
    token_input.send_keys(user["access_token"])
    browser.find_element(By.CSS_SELECTOR, ".modal-ux .auth-btn-wrapper .authorize").click()
    browser.find_element(By.CSS_SELECTOR, ".modal-ux .btn-done").click()

    me = browser.find_element(By.XPATH, "//div[contains(@class, 'opblock-get')][.//*[@data-path='/auth/me']]")
    me.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
    wait.until(lambda _: me.find_elements(By.CSS_SELECTOR, ".try-out__btn"))[0].click()
    wait.until(lambda _: me.find_elements(By.CSS_SELECTOR, ".execute"))[0].click()
    status = wait.until(lambda _: me.find_elements(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_status"))
    body = me.find_element(By.CSS_SELECTOR, ".live-responses-table tbody .response-col_description").text
    browser.execute_script("arguments[0].scrollIntoView()", me)
    browser.save_screenshot(os.path.join(STATE_DIR, "api-docs.png"))

    assert status[0].text.strip() == "200"
    assert user["user"]["username"] in body
