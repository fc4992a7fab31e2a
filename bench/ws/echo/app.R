# The WebSocket benchmark's backend: an httpuv server that echoes every
# WebSocket message back (on any path) and answers HTTP with a small
# page.  Run by byd as an app (shiny::runApp sources this file, and
# runServer never returns: the worker's port is ours) or bare with
#   Rscript -e 'source("bench/ws/echo/app.R")'  (SHINY_PORT, default 8080)
port <- as.integer(Sys.getenv("SHINY_PORT", "8080"))
cat("ws echo on port", port, "\n")
httpuv::runServer("127.0.0.1", port, list(
  call = function(req) {
    list(status = 200L, headers = list("Content-Type" = "text/html"),
         body = "<!DOCTYPE html><html><body>ws echo</body></html>")
  },
  onWSOpen = function(ws) {
    ws$onMessage(function(binary, message) ws$send(message))
  }
))
