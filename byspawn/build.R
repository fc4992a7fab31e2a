# build.R: resolve and install the R packages of one app bundle.
#
# byspawn runs this script inside a bubblewrap sandbox, as a worker slot
# user, in two steps:
#
#   Rscript --vanilla /blockyard-build/build.R resolve
#       decide which packages the app needs beyond the host libraries and
#       write the plan, BLOCKYARD_LIB/.blockyard/plan.json; installs nothing
#   Rscript --vanilla /blockyard-build/build.R install
#       install every package of the plan into BLOCKYARD_LIB, skipping the
#       ones byspawn already linked from its package store
#
# Inputs come from the environment (BLOCKYARD_APP, BLOCKYARD_MANIFEST,
# BLOCKYARD_LIB, BLOCKYARD_HOST_LIBS, BLOCKYARD_REPOS, BLOCKYARD_REFRESH), so
# the tests can run the script outside the sandbox.  BLOCKYARD_PLAN, when
# set, is the plan the install step reads instead (byspawn installs one
# package per step from a one-package plan).  The manifest comes in
# three forms:
#   pinned       "packages": exact versions (renv.lock or rsconnect manifest)
#   description  "description": DESCRIPTION fields, newest versions that
#                meet the constraints, closed over the repository index
#   scripts      neither: the app's R code is parsed for library(),
#                require(), requireNamespace(), loadNamespace() and pkg::f
#
# Output is plain text, one line per decision or action; it becomes the
# task log.  Every failure prints "ERROR: ..." and exits with status 1.
# Base R and jsonlite only; remotes is used for GitHub, GitLab, Bitbucket
# and git sources when the host has it.  Writes only to BLOCKYARD_LIB and
# tempdir().
#
# The install step uses pak when requireNamespace("pak") finds it on the
# library path (R_LIBS first): every plan entry goes to pak::pkg_install()
# as a package reference (url:: or local:: for repository tarballs,
# user/repo@sha, gitlab::, git::), without dependencies or upgrades.
# Sources pak has no reference for (Bitbucket, a GitHub or GitLab host
# other than the public one, a git subdirectory) still go through remotes.
# Without pak, or with BLOCKYARD_NO_PAK=1 in the environment, it is base
# R's install.packages() plus remotes.  The first line of the step says
# which: "install: using pak <version>" or "install: using base R
# install.packages".

options(warn = 1, useFancyQuotes = FALSE,
        timeout = max(300, getOption("timeout")))

`%||%` <- function(a, b) if (is.null(a)) b else a

# ---------------------------------------------------------------------------
# Output

say <- function(...) {
  cat(..., "\n", sep = "")
  flush(stdout())
}

fail <- function(...) {
  say("ERROR: ", gsub("\\s*\n\\s*", " ", trimws(paste0(...))))
  quit(save = "no", status = 1)
}

# say(), but a line already said (in an earlier closure pass) is not
# repeated.
say_once <- function(st, ...) {
  line <- paste0(...)
  if (!line %in% st$said) {
    st$said <- c(st$said, line)
    say(line)
  }
}

# Sort the same way in every locale, so plans are byte-for-byte stable.
sorted <- function(x) sort(unique(as.character(x)), method = "radix")

# ---------------------------------------------------------------------------
# Configuration

env <- function(name, default = "") {
  v <- Sys.getenv(name, "")
  if (nzchar(v)) v else default
}

config <- function() {
  lib <- env("BLOCKYARD_LIB", "/blockyard-lib")
  host <- env("BLOCKYARD_HOST_LIBS", paste(
    "/usr/local/lib/R/site-library", "/usr/lib/R/site-library",
    "/usr/lib/R/library", sep = ":"))
  list(
    app = env("BLOCKYARD_APP", "/app"),
    manifest = env("BLOCKYARD_MANIFEST", "/blockyard-build/manifest.json"),
    lib = lib,
    plan = file.path(lib, ".blockyard", "plan.json"),
    install_plan = env("BLOCKYARD_PLAN",
                       file.path(lib, ".blockyard", "plan.json")),
    host_libs = Filter(nzchar, strsplit(host, ":", fixed = TRUE)[[1]]),
    default_repos = env("BLOCKYARD_REPOS"),
    refresh = identical(env("BLOCKYARD_REFRESH"), "1"))
}

read_manifest <- function(path) {
  if (!file.exists(path))
    fail("the manifest ", path, " does not exist")
  tryCatch(jsonlite::fromJSON(path, simplifyVector = FALSE),
           error = function(e) fail("cannot read the manifest ", path, ": ",
                                    conditionMessage(e)))
}

manifest_form <- function(m) {
  if (!is.null(m$packages)) "pinned"
  else if (!is.null(m$description)) "description"
  else "scripts"
}

# The repositories as a data frame (name, url), in search order: the
# manifest's own, else BLOCKYARD_REPOS ("Name=URL" lines).
repositories <- function(m, default) {
  r <- m$repositories
  if (length(r)) {
    name <- vapply(r, function(x) as.character(x$Name %||% ""), "")
    url <- vapply(r, function(x) as.character(x$URL %||% ""), "")
  } else {
    lines <- trimws(strsplit(default, "\n", fixed = TRUE)[[1]])
    lines <- lines[nzchar(lines)]
    eq <- regexpr("=", lines, fixed = TRUE)
    name <- ifelse(eq > 0, substr(lines, 1, eq - 1), "")
    url <- ifelse(eq > 0, substring(lines, eq + 1), lines)
  }
  url <- sub("/+$", "", trimws(url))
  name <- ifelse(nzchar(name), name, url)
  keep <- nzchar(url)
  data.frame(name = name[keep], url = url[keep], stringsAsFactors = FALSE)
}

repo_list <- function(st) paste(st$repos$url, collapse = ", ")

# ---------------------------------------------------------------------------
# Versions and dependency fields

# "pkgA (>= 1.0),\n pkgB" -> data frame (name, op, version); op and version
# are NA for a name without a constraint.
parse_deps <- function(field) {
  none <- data.frame(name = character(), op = character(),
                     version = character(), stringsAsFactors = FALSE)
  field <- as.character(unlist(field))
  field <- field[!is.na(field)]
  if (!length(field))
    return(none)
  items <- trimws(strsplit(paste(field, collapse = ","), ",",
                           fixed = TRUE)[[1]])
  items <- items[nzchar(items)]
  if (!length(items))
    return(none)
  name <- trimws(sub("\\(.*$", "", items))
  has <- grepl("(", items, fixed = TRUE)
  inner <- ifelse(has, trimws(sub("^[^(]*\\(([^)]*)\\).*$", "\\1", items)),
                  "")
  op <- ifelse(has, sub("^([<>=!]+).*$", "\\1", inner), NA)
  version <- ifelse(has, trimws(sub("^[<>=!]+", "", inner)), NA)
  data.frame(name = name, op = op, version = version,
             stringsAsFactors = FALSE)
}

# Depends + Imports + LinkingTo of a DESCRIPTION-like record (a list or a
# named character vector), without R itself.
record_deps <- function(rec) {
  get <- function(f) if (f %in% names(rec)) rec[[f]] else NULL
  d <- rbind(parse_deps(get("Depends")), parse_deps(get("Imports")),
             parse_deps(get("LinkingTo")))
  d[d$name != "R", , drop = FALSE]
}

linking_names <- function(field) setdiff(parse_deps(field)$name, "R")

same_version <- function(a, b) {
  isTRUE(tryCatch(package_version(a) == package_version(b),
                  error = function(e) identical(a, b)))
}

satisfies <- function(version, op, want) {
  if (is.na(op))
    return(TRUE)
  v <- package_version(version)
  w <- package_version(want)
  switch(op, ">=" = v >= w, ">" = v > w, "<=" = v <= w, "<" = v < w,
         "==" = v == w, "=" = v == w, "!=" = v != w, FALSE)
}

# Does version meet every constraint in cons (rows of parse_deps)?
meets_all <- function(version, cons) {
  for (i in seq_len(nrow(cons)))
    if (!satisfies(version, cons$op[i], cons$version[i]))
      return(FALSE)
  TRUE
}

describe_constraints <- function(cons) {
  cons <- cons[!is.na(cons$op), , drop = FALSE]
  if (!nrow(cons))
    return("")
  paste(unique(paste(cons$op, cons$version)), collapse = ", ")
}

# ---------------------------------------------------------------------------
# Host libraries

# Version of every package on the host libraries; where a package is in
# several, the first library wins, as it does when the app loads it.
host_versions <- function(libs) {
  libs <- libs[dir.exists(libs)]
  if (!length(libs))
    return(character())
  ip <- installed.packages(lib.loc = libs, noCache = TRUE)
  ip <- ip[!duplicated(ip[, "Package"]), , drop = FALSE]
  stats::setNames(ip[, "Version"], ip[, "Package"])
}

base_packages <- function() rownames(installed.packages(priority = "base"))

host_version <- function(st, pkg) {
  v <- st$host[pkg]
  if (is.na(v)) NA_character_ else unname(v)
}

# ---------------------------------------------------------------------------
# Repository indexes, read only when a package is not on the host

read_index <- function(url) {
  warnings <- character()
  db <- withCallingHandlers(
    available.packages(contriburl = contrib.url(url, "source"),
                       type = "source", fields = c("MD5sum", "Path"),
                       # no "duplicates": keep every version
                       filters = c("R_version", "OS_type", "subarch")),
    warning = function(w) {
      warnings <<- c(warnings, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  for (w in unique(warnings))
    say("resolve: warning: ", gsub("\n", " ", w))
  db
}

repo_index <- function(st, i) {
  if (is.null(st$index[[i]]))
    st$index[[i]] <- read_index(st$repos$url[i])
  st$index[[i]]
}

# Repository numbers in search order; a repository named by the package's
# own "Repository" field (name or URL) goes first.
repo_order <- function(st, preferred = NULL) {
  n <- seq_len(nrow(st$repos))
  if (is.null(preferred) || !nzchar(preferred))
    return(n)
  pref <- sub("/+$", "", preferred)
  first <- n[st$repos$name == pref | st$repos$url == pref]
  c(first, setdiff(n, first))
}

# A plan entry from one row of a repository index.
index_entry <- function(st, i, row) {
  pkg <- row[["Package"]]
  ver <- row[["Version"]]
  path <- row[["Path"]]
  dir <- if (is.na(path) || !nzchar(path)) row[["Repository"]]
         else paste(row[["Repository"]], path, sep = "/")
  md5 <- row[["MD5sum"]]
  list(package = pkg, version = ver, source = "Repository",
       repository = st$repos$url[i],
       url = sprintf("%s/%s_%s.tar.gz", dir, pkg, ver),
       checksum = if (is.na(md5)) "" else md5, remote_sha = "",
       deps = record_deps(as.list(row)),
       linking_to = linking_names(row[["LinkingTo"]]))
}

index_rows <- function(db, pkg) db[db[, "Package"] == pkg, , drop = FALSE]

# The newest version meeting cons in the first repository that has one.
repo_newest <- function(st, pkg, cons) {
  listed <- FALSE
  for (i in repo_order(st)) {
    rows <- index_rows(repo_index(st, i), pkg)
    listed <- listed || nrow(rows) > 0
    ok <- vapply(rows[, "Version"], meets_all, TRUE, cons = cons)
    rows <- rows[ok, , drop = FALSE]
    if (nrow(rows)) {
      newest <- order(package_version(rows[, "Version"]),
                      decreasing = TRUE)[1]
      return(index_entry(st, i, rows[newest, ]))
    }
  }
  wanted <- describe_constraints(cons)
  if (!listed || !nzchar(wanted))
    fail("package '", pkg, "' is not available from the repositories (",
         repo_list(st), ")")
  fail("package '", pkg, "' (", wanted,
       ") is not available from the repositories (", repo_list(st), ")")
}

# A local path for a file:// URL, else a download into tempdir(); NULL
# when the tarball cannot be had.
fetch <- function(url) {
  if (startsWith(url, "file://")) {
    path <- utils::URLdecode(sub("^file://", "", url))
    return(if (file.exists(path)) path else NULL)
  }
  dest <- file.path(tempfile("dl"), basename(url))
  dir.create(dirname(dest))
  ok <- tryCatch(suppressWarnings(
    utils::download.file(url, dest, mode = "wb", quiet = TRUE)) == 0,
    error = function(e) FALSE)
  if (ok && file.exists(dest)) dest else NULL
}

# The DESCRIPTION record inside a source tarball, or NULL.
tarball_description <- function(path, pkg) {
  exdir <- tempfile("desc")
  on.exit(unlink(exdir, recursive = TRUE))
  member <- paste0(pkg, "/DESCRIPTION")
  tryCatch({
    utils::untar(path, files = member, exdir = exdir, tar = "internal")
    as.list(read.dcf(file.path(exdir, member))[1, ])
  }, error = function(e) NULL, warning = function(w) NULL)
}

# Version ver of pkg from the Archive/ layout of repository i, or NULL.
# The tarball is fetched (read in place for file://) to learn its deps.
archive_entry <- function(st, i, pkg, ver) {
  url <- sprintf("%s/src/contrib/Archive/%s/%s_%s.tar.gz",
                 st$repos$url[i], pkg, pkg, ver)
  path <- fetch(url)
  if (is.null(path))
    return(NULL)
  desc <- tarball_description(path, pkg)
  if (!startsWith(url, "file://"))
    unlink(dirname(path), recursive = TRUE)
  if (is.null(desc) || !same_version(desc$Version %||% "", ver))
    return(NULL)
  list(package = pkg, version = ver, source = "Repository",
       repository = st$repos$url[i], url = url, checksum = "",
       remote_sha = "", deps = record_deps(desc),
       linking_to = linking_names(desc$LinkingTo), archived = TRUE)
}

# Exactly version ver of pkg: the first repository whose index or archive
# has it.
repo_exact <- function(st, pkg, ver, preferred = NULL) {
  for (i in repo_order(st, preferred)) {
    rows <- index_rows(repo_index(st, i), pkg)
    hit <- vapply(rows[, "Version"], same_version, TRUE, b = ver)
    if (any(hit))
      return(index_entry(st, i, rows[which(hit)[1], ]))
    entry <- archive_entry(st, i, pkg, ver)
    if (!is.null(entry))
      return(entry)
  }
  fail("package '", pkg, "' version '", ver,
       "' is not available from the repositories (", repo_list(st), ")")
}

# ---------------------------------------------------------------------------
# Remote (GitHub, GitLab, Bitbucket, git) sources

remote_kind <- function(x) {
  k <- tolower(x %||% "")
  switch(k, github = "GitHub", gitlab = "GitLab", bitbucket = "Bitbucket",
         git = "git", "")
}

# One "Remotes" item of a DESCRIPTION: [pkg=][type::]user/repo[/subdir][@ref]
# (for git:: the rest is a URL[@ref]).  The package name defaults to the
# repository's.
parse_remote <- function(item) {
  pkg <- ""
  eq <- regexpr("=", item, fixed = TRUE)
  if (eq > 0 && !grepl("::", substr(item, 1, eq), fixed = TRUE)) {
    pkg <- trimws(substr(item, 1, eq - 1))
    item <- trimws(substring(item, eq + 1))
  }
  type <- "github"
  if (grepl("::", item, fixed = TRUE)) {
    type <- tolower(sub("::.*$", "", item))
    item <- sub("^[^:]*::", "", item)
  }
  kind <- remote_kind(type)
  if (!nzchar(kind))
    return(list(kind = type, item = item))
  ref <- ""
  at <- regexpr("@[^/@]*$", item)
  if (at > 0) {
    ref <- substring(item, at + 1)
    item <- substr(item, 1, at - 1)
  }
  if (kind == "git") {
    repo <- sub("\\.git$", "", basename(item))
    return(list(Package = if (nzchar(pkg)) pkg else repo, Source = kind,
                RemoteUrl = item, RemoteRef = ref, RemoteSha = "",
                RemoteSubdir = ""))
  }
  parts <- strsplit(item, "/", fixed = TRUE)[[1]]
  if (length(parts) < 2)
    return(list(kind = type, item = item))
  list(Package = if (nzchar(pkg)) pkg else parts[2], Source = kind,
       RemoteUsername = parts[1], RemoteRepo = parts[2], RemoteRef = ref,
       RemoteSha = "", RemoteSubdir = paste(parts[-(1:2)], collapse = "/"))
}

# Named list pkg -> remote record (manifest field names), from the pinned
# packages or from the description's Remotes.
remote_specs <- function(m, quiet = TRUE) {
  specs <- list()
  for (name in names(m$packages)) {
    e <- m$packages[[name]]
    kind <- remote_kind(e$Source)
    if (!nzchar(kind))
      kind <- remote_kind(e$RemoteType)
    if (nzchar(kind)) {
      e$Source <- kind
      specs[[e$Package %||% name]] <- e
    }
  }
  field <- m$description$Remotes %||% ""
  items <- trimws(strsplit(as.character(field), ",", fixed = TRUE)[[1]])
  for (item in items[nzchar(items)]) {
    r <- parse_remote(item)
    if (is.null(r$Package)) {
      if (!quiet)
        say("resolve: warning: ignoring remote '", item,
            "': unsupported type '", r$kind, "'")
    } else {
      specs[[r$Package]] <- r
    }
  }
  specs
}

remote_entry <- function(pkg, ver, spec) {
  where <- if (spec$Source == "git") spec$RemoteUrl
           else paste(c(spec$RemoteUsername, spec$RemoteRepo,
                        if (nzchar(spec$RemoteSubdir %||% ""))
                          spec$RemoteSubdir), collapse = "/")
  ref <- spec$RemoteSha %||% ""
  if (!nzchar(ref)) ref <- spec$RemoteRef %||% ""
  list(package = pkg, version = ver %||% "", source = spec$Source,
       repository = "", url = "", checksum = "",
       remote_sha = spec$RemoteSha %||% "",
       remote_subdir = spec$RemoteSubdir %||% "",
       deps = parse_deps(NULL),
       where = paste0(where, if (nzchar(ref)) paste0("@", ref)))
}

# ---------------------------------------------------------------------------
# Scanning bare scripts with R's parser

# The R code of an R Markdown or Quarto file: knitr::purl when knitr is
# installed, else the ```{r} chunks.
markdown_code <- function(path) {
  if (requireNamespace("knitr", quietly = TRUE)) {
    out <- tempfile(fileext = ".R")
    ok <- tryCatch({
      suppressMessages(knitr::purl(path, output = out, documentation = 0,
                                   quiet = TRUE))
      TRUE
    }, error = function(e) FALSE)
    if (ok && file.exists(out))
      return(readLines(out, warn = FALSE))
  }
  chunk_code(readLines(path, warn = FALSE))
}

# Lines between a ```{r ...} fence and the closing ``` fence.
chunk_code <- function(lines) {
  code <- character()
  inside <- FALSE
  for (line in lines) {
    if (!inside && grepl("^\\s*```+\\s*\\{[rR]([ ,}]|$)", line)) {
      inside <- TRUE
    } else if (inside && grepl("^\\s*```+\\s*$", line)) {
      inside <- FALSE
    } else if (inside) {
      code <- c(code, line)
    }
  }
  code
}

# The function a call calls, as a name: library, base::library -> "library".
call_name <- function(f) {
  if (is.symbol(f))
    return(as.character(f))
  if (is.call(f) && length(f) == 3 && is.symbol(f[[1]]) &&
      as.character(f[[1]]) %in% c("::", ":::") &&
      identical(as.character(f[[2]]), "base") && is.symbol(f[[3]]))
    return(as.character(f[[3]]))
  ""
}

# library(x) / require(x): the package unless character.only = TRUE with a
# non-literal argument.
attached_package <- function(x, fn) {
  m <- tryCatch(match.call(get(fn, baseenv()), x), error = function(e) NULL)
  p <- if (is.null(m)) NULL else m$package
  if (is.character(p) && length(p) == 1)
    return(p)
  co <- m$character.only
  literal_false <- is.null(co) || identical(co, FALSE) ||
    identical(co, as.name("F"))
  if (is.symbol(p) && literal_false)
    return(as.character(p))
  character()
}

# requireNamespace("x") / loadNamespace("x"): string literals only.
namespace_package <- function(x, fn) {
  m <- tryCatch(match.call(get(fn, baseenv()), x), error = function(e) NULL)
  p <- if (is.null(m)) NULL else m$package
  if (is.character(p) && length(p) == 1) p else character()
}

call_packages <- function(x) {
  fn <- call_name(x[[1]])
  if (fn %in% c("::", ":::") && length(x) == 3 &&
      (is.symbol(x[[2]]) || (is.character(x[[2]]) && length(x[[2]]) == 1)))
    return(as.character(x[[2]]))
  if (fn %in% c("library", "require"))
    return(attached_package(x, fn))
  if (fn %in% c("requireNamespace", "loadNamespace"))
    return(namespace_package(x, fn))
  character()
}

# Every package named in an expression tree.
expr_packages <- function(exprs) {
  found <- character()
  visit <- function(x) {
    if (missing(x))
      return(invisible())
    if (is.call(x)) {
      found <<- c(found, call_packages(x))
      lapply(as.list(x), visit)
    } else if (is.expression(x) || is.pairlist(x) || is.list(x)) {
      lapply(as.list(x), visit)
    }
    invisible()
  }
  visit(exprs)
  found
}

file_packages <- function(path, rel) {
  exprs <- tryCatch(
    if (grepl("\\.(rmd|qmd)$", path, ignore.case = TRUE))
      parse(text = markdown_code(path), keep.source = FALSE)
    else
      parse(path, keep.source = FALSE),
    error = function(e) {
      msg <- strsplit(conditionMessage(e), "\n", fixed = TRUE)[[1]][1]
      say("resolve: warning: cannot parse ", rel, ": ", msg)
      NULL
    })
  if (is.null(exprs)) character() else expr_packages(exprs)
}

# Package names used by the R, R Markdown and Quarto files under dir
# (recursively; hidden files and directories are skipped), without the
# base packages.
scan_app <- function(dir, base) {
  files <- sorted(list.files(dir, pattern = "\\.(r|rmd|qmd)$",
                             ignore.case = TRUE, recursive = TRUE,
                             all.files = FALSE))
  found <- character()
  for (rel in files) {
    pkgs <- file_packages(file.path(dir, rel), rel)
    pkgs <- pkgs[grepl("^[A-Za-z][A-Za-z0-9.]*[A-Za-z0-9]$", pkgs) &
                   !pkgs %in% base]
    if (length(pkgs))
      say("resolve: ", rel, " uses ", paste(sorted(pkgs), collapse = ", "))
    found <- c(found, pkgs)
  }
  sorted(found)
}

# ---------------------------------------------------------------------------
# Resolution

new_state <- function(cfg, m) {
  st <- new.env()
  st$repos <- repositories(m, cfg$default_repos)
  st$index <- vector("list", nrow(st$repos))
  st$host <- host_versions(cfg$host_libs)
  st$base <- base_packages()
  st$said <- character()
  st
}

host_record <- function(pkg, ver) list(package = pkg, version = ver)

# pinned: every manifest package at exactly its version.
resolve_pinned <- function(st, m) {
  entries <- m$packages
  names(entries) <- vapply(names(entries), function(n)
    as.character(entries[[n]]$Package %||% n), "")
  specs <- remote_specs(m)
  host <- list()
  pkgs <- list()
  for (pkg in sorted(names(entries))) {
    e <- entries[[pkg]]
    ver <- as.character(e$Version %||% "")
    hv <- host_version(st, pkg)
    if (!nzchar(ver) && is.null(specs[[pkg]]))
      fail("pinned package '", pkg, "' has no Version")
    if (!is.na(hv) && (pkg %in% st$base || same_version(hv, ver))) {
      host[[pkg]] <- host_record(pkg, hv)
    } else if (!is.null(specs[[pkg]])) {
      pkgs[[pkg]] <- remote_entry(pkg, ver, specs[[pkg]])
    } else {
      pref <- as.character(e$Repository %||% "")
      pkgs[[pkg]] <- repo_exact(st, pkg, ver, pref)
    }
  }
  for (p in pkgs) {
    loose <- setdiff(p$deps$name, c(names(pkgs), names(host), st$base,
                                    names(st$host)))
    for (d in sorted(loose))
      say("resolve: warning: ", p$package, " needs ", d,
          ", which is neither pinned nor on the host")
  }
  list(requested = sorted(names(entries)), host = host, packages = pkgs)
}

# One pass over the closure of top under the constraints cons.  Returns
# the decisions and every constraint met on the way.
closure_pass <- function(st, top, cons, specs) {
  host <- list()
  pkgs <- list()
  seen <- character()
  queue <- top
  while (length(queue)) {
    pkg <- queue[1]
    queue <- queue[-1]
    if (pkg %in% seen || pkg %in% st$base || pkg == "R")
      next
    seen <- c(seen, pkg)
    mine <- cons[cons$name == pkg, , drop = FALSE]
    hv <- host_version(st, pkg)
    if (!is.na(hv) && meets_all(hv, mine)) {
      host[[pkg]] <- host_record(pkg, hv)
      next
    }
    if (!is.na(hv))
      say_once(st, "resolve: ", pkg, " ", hv, " on the host does not meet",
               " (", describe_constraints(mine), ")")
    if (!is.null(specs[[pkg]])) {
      pkgs[[pkg]] <- remote_entry(pkg, "", specs[[pkg]])
    } else {
      entry <- repo_newest(st, pkg, mine)
      pkgs[[pkg]] <- entry
      deps <- entry$deps
      if (nrow(deps)) {
        deps$from <- pkg
        cons <- unique(rbind(cons, deps))
      }
      queue <- c(queue, sorted(deps$name))
    }
  }
  list(host = host, packages = pkgs, constraints = cons)
}

# description and scripts: the closure of the top-level names, repeated
# until no new constraint turns up (a constraint found late can move a
# package off the host or to another version).
resolve_closure <- function(st, top, cons, specs) {
  key <- function(c) paste(c$name, c$op, c$version, c$from)
  repeat {
    pass <- closure_pass(st, top, cons, specs)
    if (all(key(pass$constraints) %in% key(cons)))
      return(list(requested = top, host = pass$host,
                  packages = pass$packages))
    cons <- pass$constraints
  }
}

resolve_description <- function(st, m) {
  deps <- record_deps(m$description)
  deps <- deps[!deps$name %in% st$base, , drop = FALSE]
  deps$from <- rep("the app", nrow(deps))
  resolve_closure(st, sorted(deps$name), deps, remote_specs(m, FALSE))
}

resolve_scripts <- function(st, m, app) {
  top <- scan_app(app, st$base)
  none <- parse_deps(NULL)
  none$from <- character()
  resolve_closure(st, sorted(top), none, remote_specs(m, FALSE))
}

# Packages in install order: dependencies first, ties by name.
install_order <- function(pkgs) {
  left <- sorted(names(pkgs))
  needs <- lapply(pkgs, function(p) intersect(p$deps$name, names(pkgs)))
  out <- character()
  while (length(left)) {
    ready <- left[vapply(left, function(p) all(needs[[p]] %in% out), TRUE)]
    if (!length(ready)) {
      say("resolve: warning: dependency cycle among ",
          paste(left, collapse = ", "))
      ready <- left[1]
    }
    out <- c(out, ready[1])
    left <- setdiff(left, ready[1])
  }
  pkgs[out]
}

# One "packages" element of plan.json.  depends: the dependencies that are
# themselves in the plan; linking_to: every LinkingTo name (headers the
# package compiles against, wherever they come from); remote_subdir (not
# in the contract, read by byspawn's store key): a remote's subdirectory.
plan_entry <- function(p, all) {
  list(package = p$package, version = p$version, source = p$source,
       repository = p$repository, url = p$url, checksum = p$checksum,
       remote_sha = p$remote_sha, remote_subdir = p$remote_subdir %||% "",
       depends = I(sorted(intersect(p$deps$name, all))),
       linking_to = I(sorted(p$linking_to %||% character())))
}

report <- function(res) {
  for (h in res$host[sorted(names(res$host))])
    say("resolve: ", h$package, " ", h$version, " from the host library")
  for (p in res$packages) {
    from <- if (nzchar(p$repository)) p$repository
            else paste(p$source, p$where)
    say("resolve: ", p$package, " ", if (nzchar(p$version)) p$version
        else "(version unknown)", " from ", from,
        if (isTRUE(p$archived)) " (archive)" else "")
  }
}

write_plan <- function(path, plan) {
  dir.create(dirname(path), recursive = TRUE, showWarnings = FALSE)
  tmp <- paste0(path, ".tmp")
  writeLines(jsonlite::toJSON(plan, auto_unbox = TRUE, pretty = TRUE,
                              null = "null"), tmp)
  if (!file.rename(tmp, path))
    fail("cannot write ", path)
}

resolve <- function(cfg) {
  unlink(cfg$plan)  # a failed resolve leaves no plan behind
  m <- read_manifest(cfg$manifest)
  form <- manifest_form(m)
  rv <- paste(R.version$major, R.version$minor, sep = ".")
  say("resolve: R ", rv, " on ", R.version$platform, ", ", form, " form",
      if (cfg$refresh) ", refresh: unpinned packages to the newest" else "")
  if (!is.null(m$r_version) && !same_version(m$r_version, rv))
    say("resolve: note: the bundle was made with R ", m$r_version)
  st <- new_state(cfg, m)
  res <- switch(form,
                pinned = resolve_pinned(st, m),
                description = resolve_description(st, m),
                scripts = resolve_scripts(st, m, cfg$app))
  res$packages <- install_order(res$packages)
  report(res)
  all <- names(res$packages)
  write_plan(cfg$plan, list(
    r_version = rv,
    platform = R.version$platform,
    form = form,
    requested = I(res$requested),
    host = unname(res$host[sorted(names(res$host))]),
    packages = unname(lapply(res$packages, plan_entry, all = all))))
  say("resolve: ", length(res$host), " from the host, ",
      length(res$packages), " to install; plan in ", cfg$plan)
}

# ---------------------------------------------------------------------------
# Installation

lib_version <- function(lib, pkg) {
  desc <- file.path(lib, pkg, "DESCRIPTION")
  if (!file.exists(desc))
    return(NA_character_)
  v <- tryCatch(read.dcf(desc, fields = "Version")[1, 1],
                error = function(e) NA_character_)
  unname(v)
}

# install.packages() reports a failed R CMD INSTALL as a warning only:
# collect the warnings and return them as the failure reason.
quietly_install <- function(expr) {
  problems <- character()
  withCallingHandlers(
    tryCatch(expr, error = function(e)
      problems <<- c(problems, conditionMessage(e))),
    warning = function(w) {
      problems <<- c(problems, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  paste(gsub("\n", " ", problems), collapse = "; ")
}

# The installer of this step: pak when the library path has it (and
# BLOCKYARD_NO_PAK is not 1), else base R.  Says which; TRUE for pak.
use_pak <- function() {
  if (!identical(env("BLOCKYARD_NO_PAK"), "1") &&
      requireNamespace("pak", quietly = TRUE)) {
    say("install: using pak ", as.character(utils::packageVersion("pak")))
    return(TRUE)
  }
  say("install: using base R install.packages")
  FALSE
}

# One package reference through pak, into the library only.  pak's
# errors are multi-line and indented: the reason is made one line.
pak_install <- function(cfg, ref) {
  reason <- quietly_install(pak::pkg_install(ref, lib = cfg$lib,
                                             dependencies = FALSE,
                                             upgrade = FALSE, ask = FALSE))
  gsub("\\s+", " ", trimws(reason))
}

# The pak reference of a remote, or NULL where pak has none (Bitbucket, a
# GitHub or GitLab host other than the public one, a git subdirectory).
# A package named unlike its repository gets a "<pkg>=" prefix.
pak_remote_ref <- function(pkg, spec) {
  ref <- spec$RemoteSha %||% ""
  if (!nzchar(ref)) ref <- spec$RemoteRef %||% ""
  at <- if (nzchar(ref)) paste0("@", ref) else ""
  subdir <- spec$RemoteSubdir %||% ""
  host <- sub("/+$", "", sub("^https?://", "", spec$RemoteHost %||% ""))
  repo <- paste(spec$RemoteUsername, spec$RemoteRepo, sep = "/")
  named <- function(ref, as) paste0(if (!identical(pkg, as)) paste0(pkg, "="),
                                    ref)
  switch(spec$Source,
    GitHub = if (host %in% c("", "api.github.com", "github.com"))
      named(paste0(repo, if (nzchar(subdir)) paste0("/", subdir), at),
            spec$RemoteRepo),
    GitLab = if (host %in% c("", "gitlab.com"))
      named(paste0("gitlab::", repo,
                   if (nzchar(subdir)) paste0("/-/", subdir), at),
            spec$RemoteRepo),
    git = if (!nzchar(subdir))
      named(paste0("git::", spec$RemoteUrl, at),
            sub("\\.git$", "", basename(spec$RemoteUrl))),
    NULL)
}

# A repository tarball.  With pak: a file:// one as local::<path>, an
# http(s) one as url::<url>, but one with a checksum is downloaded here
# first and, once it matches, given to pak as local::<download>.
install_tarball <- function(cfg, p, pak = FALSE) {
  say("installing ", p$package, " ", p$version, " from ", p$url)
  checksum <- p$checksum %||% ""
  if (pak && !nzchar(checksum) && !startsWith(p$url, "file://"))
    return(pak_install(cfg, paste0("url::", p$url)))
  path <- fetch(p$url)
  if (is.null(path))
    return(paste("cannot download", p$url))
  if (nzchar(checksum) &&
      !identical(unname(tools::md5sum(path)), checksum))
    return(paste("checksum mismatch for", p$url))
  if (pak)
    return(pak_install(cfg, paste0("local::", path)))
  quietly_install(utils::install.packages(path, lib = cfg$lib, repos = NULL,
                                          type = "source"))
}

install_remote <- function(cfg, p, spec, pak = FALSE) {
  if (is.null(spec))
    return(paste("no", p$source, "remote for it in the manifest"))
  if (nzchar(p$remote_sha %||% ""))
    spec$RemoteSha <- p$remote_sha
  e <- remote_entry(p$package, p$version, spec)
  ref <- if (pak) pak_remote_ref(p$package, spec)
  if (!is.null(ref)) {
    say("installing ", p$package, " ", p$version, " from ", p$source, " ",
        e$where)
    return(pak_install(cfg, ref))
  }
  if (!requireNamespace("remotes", quietly = TRUE))
    fail("package '", p$package, "' needs the R package remotes for a ",
         p$source, " source")
  say("installing ", p$package, " ", p$version, " from ", p$source, " ",
      e$where)
  ref <- spec$RemoteSha %||% ""
  if (!nzchar(ref)) ref <- spec$RemoteRef %||% ""
  if (!nzchar(ref)) ref <- "HEAD"
  subdir <- spec$RemoteSubdir %||% ""
  if (!nzchar(subdir)) subdir <- NULL
  repo <- paste(spec$RemoteUsername, spec$RemoteRepo, sep = "/")
  host <- spec$RemoteHost %||% ""
  common <- list(lib = cfg$lib, upgrade = "never", dependencies = FALSE,
                 force = TRUE)
  at_host <- if (nzchar(host)) list(host = host)
  call <- switch(p$source,
    GitHub = c(list("install_github", repo = repo, ref = ref,
                    subdir = subdir), at_host),
    GitLab = c(list("install_gitlab", repo = paste0(repo, "@", ref),
                    subdir = subdir), at_host),
    Bitbucket = c(list("install_bitbucket", repo = repo, ref = ref,
                       subdir = subdir), at_host),
    git = list("install_git", url = spec$RemoteUrl, ref = ref,
               subdir = subdir))
  fn <- getExportedValue("remotes", call[[1]])
  quietly_install(do.call(fn, c(call[-1], common)))
}

install_one <- function(cfg, p, specs, pak = FALSE) {
  pkg <- p$package
  ver <- p$version
  have <- lib_version(cfg$lib, pkg)
  if (nzchar(ver) && !is.na(have) && same_version(have, ver)) {
    say("store: ", pkg, " ", ver, " already in the library")
    return(invisible())
  }
  reason <- if (p$source == "Repository") install_tarball(cfg, p, pak)
            else install_remote(cfg, p, specs[[pkg]], pak)
  have <- lib_version(cfg$lib, pkg)
  if (is.na(have) || (nzchar(ver) && !same_version(have, ver))) {
    if (!nzchar(reason))
      reason <- if (is.na(have)) "not in the library afterwards"
                else paste("the library has version", have)
    fail("installing ", pkg, " ", ver, " failed: ", reason)
  }
  say("installed ", pkg, " ", have)
}

install <- function(cfg) {
  if (!file.exists(cfg$install_plan))
    fail("no plan at ", cfg$install_plan, ": run the resolve step first")
  plan <- jsonlite::fromJSON(cfg$install_plan, simplifyVector = FALSE)
  pak <- use_pak()
  specs <- list()
  if (any(vapply(plan$packages, function(p) p$source != "Repository", TRUE)))
    specs <- remote_specs(read_manifest(cfg$manifest))
  for (p in plan$packages)
    install_one(cfg, p, specs, pak)
  say("install: ", length(plan$packages), " packages in ", cfg$lib)
}

# ---------------------------------------------------------------------------

main <- function(args) {
  cfg <- config()
  mode <- if (length(args)) args[[1]] else ""
  switch(mode,
         resolve = resolve(cfg),
         install = install(cfg),
         fail("usage: build.R resolve|install"))
}

tryCatch(main(commandArgs(trailingOnly = TRUE)),
         error = function(e) fail(conditionMessage(e)))
quit(save = "no", status = 0)
