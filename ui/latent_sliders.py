"""The Latent explorer's sliders with the decoded image beside them, answered in the browser.

A Streamlit slider answers each move with a rerun: the browser sends the value, the script decodes z
and sends the image, and the frontend re-renders the fragment and then every other element of the
page. On the explorer that took 60–110 ms from key press to new image against 30–40 ms for a page
with one slider and one image (bench/bench_ui_latency.py, this 2-core machine, 2026-12-02/03); the
browser's own profile put the difference in React re-rendering the page, not in the decoder (1.4 ms)
or the network. So this component (st.components.v2, in the page's own DOM) holds the sliders, and
the page hands it, with them, the decoded image at every position of the slider that has the focus
(engine.lab.explorer.slider_strip: 2·TICKS + 1 codes, one decoder pass, cached): a key press or a drag
along that slider shows its image in the browser at once, during a drag too (a Streamlit slider waits
for the release). Each committed move still reaches the server, which keeps the positions (the link's
`?z=`, Reset) and sends the strip of whichever slider takes the focus next; until that strip is there
the image waits for the server, as before. Every tile shown is the decoder's output for the
positions it is shown at; while a strip is on its way, the last image stays, dimmed.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from engine.lab.explorer import STEP, TICKS, from_ticks, to_ticks

COMPONENT = "latent_lab.latent_sliders"
HTML = """<div class="ll-pad">
  <div class="ll-sliders"></div>
  <div class="ll-images">
    <figure class="ll-figure"><img class="ll-decoded" alt="the decoded image x̂ = g(z)" width="224" height="224">
      <figcaption class="ll-caption"></figcaption></figure>
    <p class="ll-z"></p>
    <figure class="ll-start" hidden><img alt="the start image" width="84" height="84"><figcaption></figcaption></figure>
  </div>
</div>"""
CSS = """
.ll-pad { display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 1fr); gap: 1.5rem 3rem;
  font-family: var(--st-font, sans-serif); color: var(--st-text-color, inherit); }
.ll-sliders { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 0.6rem 1.5rem;
  align-content: start; }
.ll-head { display: flex; justify-content: space-between; gap: 0.5rem; font-size: 0.875rem; }
.ll-head output { font-variant-numeric: tabular-nums; white-space: nowrap; }
.ll-slider input { width: 100%; accent-color: var(--st-primary-color, #ff4b4b); margin: 0.4rem 0 0; }
.ll-images figure { margin: 0 0 0.5rem; }
.ll-images img { image-rendering: pixelated; background: #000; display: block; max-width: 100%; height: auto; }
.ll-images img.ll-decoded { width: 14rem; }  /* 224 px, 8 per pixel; in rem, so projector mode enlarges it */
.ll-start img { width: 5.25rem; }
.ll-decoded.ll-waiting { opacity: 0.85; }
.ll-images figcaption, .ll-z { font-size: 0.875rem; opacity: 0.7; margin: 0.25rem 0 0.5rem; }
.ll-z { overflow-wrap: anywhere; }
@media (max-width: 640px) { .ll-pad, .ll-sliders { grid-template-columns: minmax(0, 1fr); } }
"""


_mount = st.components.v2.component(COMPONENT, html=HTML, css=CSS,
                                    js=Path(__file__).with_name("latent_sliders.js").read_text(), isolate_styles=False)


def take_positions(key: str, keys: list[str], active_key: str, origin_key: str) -> None:
    """The component's on-change callback: its positions into st.session_state[keys[i]] (in σ) and the slider
    with the focus into st.session_state[active_key]. What the browser sent is checked, not trusted: a list of
    len(keys) whole ticks within ±TICKS and a slider index, else it is ignored. So is a move made before the
    server last moved the sliders itself (its origin is not st.session_state[origin_key]): Reset wins over a
    key press that was on its way."""
    pos = (st.session_state.get(key) or {}).get("pos")
    if not isinstance(pos, dict) or pos.get("origin") != st.session_state.get(origin_key):
        return
    ticks, active = pos.get("ticks"), pos.get("active")
    if (not isinstance(ticks, list) or len(ticks) != len(keys)
            or not all(isinstance(t, int) and not isinstance(t, bool) and abs(t) <= TICKS for t in ticks)
            or not isinstance(active, int) or isinstance(active, bool) or not 0 <= active < len(keys)):
        return
    for k, c in zip(keys, from_ticks(ticks)):
        st.session_state[k] = c
    st.session_state[active_key] = active


def latent_sliders(key: str, *, labels: list[str], helps: list[str], coords: list[float], active: int,
                   origin: int, tiles: list[str], caption: str, z: dict | None = None,
                   start: dict | None = None, on_change=None) -> None:
    """Mount the sliders and the decoded image.

    coords: the positions the server holds (σ); origin: a number to change whenever the server moves the
    sliders itself (the browser then takes `coords`; otherwise its own positions stand); tiles: base64 PNGs
    of slider `active` at every tick, the others at `coords` (engine.lab.explorer.slider_strip);
    z: {"z0": [...], "scaled": [[σᵢ uᵢ], ...]} to print z under the image, or None; start: {"png", "caption"}
    of the start image, or None; on_change: called (no arguments) when the browser sends positions.
    """
    ticks = to_ticks(coords)
    data = {"origin": origin, "ticks": ticks, "active": active, "ticks_max": TICKS, "step": STEP,
            "strip": {"slider": active, "base": ticks, "tiles": tiles}, "labels": labels, "helps": helps,
            "caption": caption, "z": z, "start": start}
    _mount(key=key, data=data, on_pos_change=on_change or (lambda: None))
