"""A real browser through the proxy: headless Chromium opens /app/hello/,
waits out the loading page, gets the Shiny page and its assets, moves
the slider, and sees the text output follow.  A screenshot goes to
$BUILD/proxy-browser.png.  Skipped only when chromium is not installed
(etc/install-deps installs it)."""

import os
import unittest

import harness
from cdp import Browser, chromium_path
from test_proxy_e2e import ProxyCase, HELLO


@unittest.skipIf(chromium_path() is None,
                 "chromium is not installed (apt-get install chromium)")
class Browse(ProxyCase):

    proxy = {"health_interval": '"1s"'}

    def test_slider_moves_summary(self):
        self.deploy("hello", HELLO)
        url = "http://127.0.0.1:%d/app/hello/" % self.byd.port
        shot = os.path.join(os.environ.get("BUILD", harness.BUILD),
                            "proxy-browser.png")
        if os.path.exists(shot):
            os.unlink(shot)
        with Browser(timeout=90) as br:
            page = br.new_page()
            # the loading page reloads itself into the app
            page.goto(url, wait_load=False)
            page.wait_for("window.Shiny && Shiny.shinyapp && "
                          "Shiny.shinyapp.isConnected()", timeout=120)
            self.assertEqual(page.url(), url)
            text = page.wait_text("#summary", "n = 200")
            self.assertRegex(text, r"^n = 200, mean = -?\d")
            # the plot arrived as an image
            page.wait_for("(function(){var i=document.querySelector("
                          "'#hist img'); return i && i.complete && "
                          "i.naturalWidth > 0})()")
            # the session cookie is HttpOnly: scripts cannot see it
            self.assertNotIn("blockyard_route",
                             page.evaluate("document.cookie"))

            # drag the slider the way its widget does
            page.evaluate("$('#n').data('ionRangeSlider')"
                          ".update({from: 700})")
            text = page.wait_text("#summary", "n = 700")
            self.assertRegex(text, r"^n = 700, mean = -?\d")
            # and by setting the input directly
            page.evaluate("Shiny.setInputValue('n', 42)")
            text = page.wait_text("#summary", "n = 42,")
            self.assertTrue(page.evaluate("Shiny.shinyapp.isConnected()"))

            # the page's assets came through the proxy; nothing failed
            # that a bare runApp serves (Debian's r-cran-shiny ships
            # strftime.min.js where shiny asks for strftime-min.js)
            res = page.evaluate(
                "performance.getEntriesByType('resource').map("
                "function(e){return [e.name, e.responseStatus]})")
            self.assertTrue([n for n, st in res if st == 200 and
                             n.startswith(url) and
                             n.endswith("/shiny.min.js")], res)
            failed = [n for n, st in res if st >= 400 and
                      not n.endswith("/strftime-min.js") and
                      not n.endswith("/favicon.ico")]
            self.assertEqual(failed, [])
            page.screenshot(shot)
        self.assertGreater(os.path.getsize(shot), 5000)
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        # one session, one worker
        ws = self.workers("hello")
        self.assertEqual(len(ws), 1, ws)
