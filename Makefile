# Two entry points, both doing their own set-up on a fresh machine:
#   make demo   index the bundled sample catalogue and search the sample photos
#   make test   the whole test suite (type check + pytest)
PYTHON ?= python3
VENV ?= .venv
# The torch build tested on the project's machines; override to use another.
TORCH ?= torch==2.14.1 torchvision==0.29.1
DEMO_HOME ?= artefact-home
BIN = $(VENV)/bin

.PHONY: demo test setup debs clean-demo

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-cache-dir --upgrade pip
	$(BIN)/pip install --quiet --no-cache-dir $(TORCH)
	$(BIN)/pip install --quiet --no-cache-dir -e '.[test,fast,scale]'
	touch $@

demo: setup
	$(BIN)/artefact --home $(DEMO_HOME) index add data/sample/catalogue.csv --images data/sample/images
	$(BIN)/artefact --home $(DEMO_HOME) search data/sample/queries/query-painting-SMP-PAINT-01.jpg
	$(BIN)/artefact --home $(DEMO_HOME) search data/sample/queries/query-coin-SMP-COIN-18.jpg
	$(BIN)/artefact --home $(DEMO_HOME) search data/sample/queries/query-unrelated-chelsea-cat.jpg

# Debian packages the tests use. The web page's browser tests drive Debian's Chromium (Playwright
# never downloads one). The fonts draw the page's screenshots and the search sheet's PDF
# (api/http/sheet.py): DejaVu Sans for Latin, Greek, Cyrillic and Arabic, WenQuanYi Micro Hei for
# Chinese. POV-Ray renders the turned 3D objects of tests/index/test_turned_textured.py (and of
# benchmarks/three_d), with its own include files' textures.
debs:
	@test -x /usr/bin/chromium -a -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc \
	  -a -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf -a -x /usr/bin/povray \
	  -a -f /usr/share/povray-3.7/include/stones.inc || { \
	  SUDO=$$( [ "$$(id -u)" -ne 0 ] && echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium \
	    fonts-wqy-microhei fonts-dejavu-core povray povray-includes; }

test: setup debs
	$(BIN)/mypy embed index api
	$(BIN)/python -m pytest

clean-demo:
	rm -rf $(DEMO_HOME)
