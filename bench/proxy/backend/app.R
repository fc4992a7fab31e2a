# The benchmark's backend: not Shiny but nginx, serving small.txt from
# this bundle on the worker's port, inside the worker's sandbox.  byproxy
# and the reference nginx proxy then forward to the same backend process
# (machine-facts 9 measured the reference the same way), and the numbers
# are the proxies', not R's.  R stays the worker's main process and
# waits; stopping the worker ends the sandbox and nginx with it.
port <- Sys.getenv("SHINY_PORT")
d <- file.path(tempdir(), "ngx")
dir.create(d, showWarnings = FALSE)
conf <- file.path(d, "nginx.conf")
writeLines(c(
  "worker_processes 1;",
  "daemon off;",
  sprintf("pid %s/nginx.pid;", d),
  sprintf("error_log %s/error.log;", d),
  "events { worker_connections 4096; }",
  "http {",
  "  access_log off;",
  sprintf("  client_body_temp_path %s/body;", d),
  sprintf("  proxy_temp_path %s/proxy;", d),
  sprintf("  fastcgi_temp_path %s/fastcgi;", d),
  sprintf("  uwsgi_temp_path %s/uwsgi;", d),
  sprintf("  scgi_temp_path %s/scgi;", d),
  "  default_type text/plain;",
  "  server {",
  sprintf("    listen 127.0.0.1:%s;", port),
  sprintf("    root %s;", getwd()),
  "    keepalive_requests 1000000;",
  "    keepalive_timeout 300s;",
  "  }",
  "}"), conf)
cat("bench backend: nginx on port", port, "serving", getwd(), "\n")
status <- system2("/usr/sbin/nginx", c("-e", file.path(d, "error.log"),
                                       "-p", d, "-c", conf))
cat("nginx exited with", status, "\n")
cat(readLines(file.path(d, "error.log")), sep = "\n")
quit(status = 1)
