// The Latent explorer's sliders and decoded image, answered in the browser (ui/latent_sliders.py says why).
//
// data: {origin, ticks, active, strip: {slider, base, tiles}, labels, helps, ticks_max, step, z, start}
//   ticks    slider positions in steps of `step` σ (integers, −ticks_max … ticks_max), the server's
//   origin   a number the server changes when it moves the sliders itself (Reset, a link, another run):
//            then the browser takes its ticks; otherwise the browser's own positions stand
//   strip    base64 PNGs of x̂ = g(z) for every position of slider `slider`, the others at `base`
//   z        {z0, scaled} to print z = z0 + Σ tickᵢ·step·scaledᵢ under the image, or null
// state sent back: pos = {ticks, active, origin}, on each committed move and when another slider takes the focus.

const PNG = "data:image/png;base64,";

function decimals(step) {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

function position(tick, step) {  // a tick as the input's value: "0.5", "1", "-0.1" (not "0.5000000001")
  return String(Number((tick * step).toFixed(decimals(step))));
}

function sigma(tick, step) {  // a tick as the label shows it: "+0.5 σ", "−1.0 σ"
  return (tick < 0 ? "−" : "+") + Math.abs(tick * step).toFixed(decimals(step)) + " σ";
}

function build(root, data) {
  const sliders = root.querySelector(".ll-sliders");
  sliders.replaceChildren();
  data.labels.forEach((label, i) => {
    const box = document.createElement("div");
    box.className = "ll-slider";
    box.dataset.slider = String(i);
    const head = document.createElement("div");
    head.className = "ll-head";
    const name = document.createElement("label");
    name.textContent = label;
    const input = document.createElement("input");
    input.type = "range";
    input.min = position(-data.ticks_max, data.step);
    input.max = position(data.ticks_max, data.step);
    input.step = String(data.step);
    input.title = data.helps[i];
    input.id = `ll-slider-${Math.random().toString(36).slice(2)}-${i}`;
    name.htmlFor = input.id;
    const out = document.createElement("output");
    out.htmlFor = input.id;
    head.append(name, out);
    box.append(head, input);
    sliders.append(box);
  });
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  const root = parentElement.querySelector(".ll-pad");
  if (!root || !data) return;
  let pad = root.__pad;
  // Rebuilt only when the sliders themselves change (their number or range): a new checkpoint of a run that
  // trains changes the labels' shares of variance, which are written in place, so the focus stays put.
  const shape = JSON.stringify([data.labels.length, data.ticks_max, data.step]);
  if (!pad) {
    pad = { origin: null, shape: null, ticks: [], active: 0, strip: null, data: null, send: null };
    root.__pad = pad;
    const inputs = () => Array.from(root.querySelectorAll(".ll-slider input"));
    const index = (el) => inputs().indexOf(el);
    // origin: the server's move these positions start from. A move sent before the server's Reset answered is
    // stale and dropped there; after a Reset the same positions as before are a new value, so they are heard.
    const commit = () => pad.send("pos", { ticks: pad.ticks.slice(), active: pad.active, origin: pad.origin });
    root.addEventListener("input", (e) => {  // every position a key press or a drag passes: shown here
      const i = index(e.target);
      if (i < 0) return;
      pad.ticks[i] = Math.round(parseFloat(e.target.value) / pad.data.step);
      pad.active = i;
      pad.render();
    });
    root.addEventListener("change", (e) => {  // a key press, or the end of a drag: the server hears it
      if (index(e.target) >= 0) commit();
    });
    const take = (e) => {  // the next slider to move: ask for its strip before it moves
      const i = index(e.target);
      if (i >= 0 && i !== pad.active) {
        pad.active = i;
        commit();
      }
    };
    root.addEventListener("focusin", take);
    root.addEventListener("pointerdown", take);
    pad.render = () => {
      const d = pad.data;
      const img = root.querySelector("img.ll-decoded");
      inputs().forEach((input, i) => {
        const out = input.parentElement.querySelector("output");
        out.textContent = sigma(pad.ticks[i], d.step);
        input.setAttribute("aria-valuetext", out.textContent);
      });
      const s = pad.strip;
      const fits = s && s.slider === pad.active
        && pad.ticks.every((t, j) => j === s.slider || t === s.base[j]);
      if (fits) {
        const src = PNG + s.tiles[pad.ticks[s.slider] + d.ticks_max];
        if (img.getAttribute("src") !== src) img.setAttribute("src", src);
      }
      img.classList.toggle("ll-waiting", !fits);
      const zline = root.querySelector(".ll-z");
      if (d.z) {
        const z = d.z.z0.map((v, k) => v + pad.ticks.reduce((acc, t, i) => acc + t * d.step * d.z.scaled[i][k], 0));
        zline.textContent = "z = (" + z.map((v) => v.toFixed(2)).join(", ") + ")";
      }
      zline.hidden = !d.z;
    };
  }
  pad.send = setStateValue;
  pad.data = data;
  if (pad.shape !== shape) {
    build(root, data);
    pad.shape = shape;
    pad.origin = null;
  }
  root.querySelectorAll(".ll-slider").forEach((box, i) => {
    const label = box.querySelector("label");
    if (label.textContent !== data.labels[i]) label.textContent = data.labels[i];
    box.querySelector("input").title = data.helps[i];
  });
  if (pad.origin !== data.origin) {  // the server moved the sliders (or this is the first view): take its positions
    pad.origin = data.origin;
    pad.ticks = data.ticks.slice();
    pad.active = data.active;
    root.querySelectorAll(".ll-slider input").forEach((input, i) => {
      input.value = position(pad.ticks[i], data.step);
    });
  }
  pad.strip = data.strip;
  const start = root.querySelector(".ll-start");
  start.hidden = !data.start;
  if (data.start) {
    start.querySelector("img").setAttribute("src", PNG + data.start.png);
    start.querySelector("figcaption").textContent = data.start.caption;
  }
  root.querySelector(".ll-caption").textContent = data.caption;
  pad.render();
}
