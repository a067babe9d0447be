// Operator screen: live panel over server-sent events, serial check on Enter (keyboard-wedge scanners type the
// serial and Enter), focus moved to what the operator must press next.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const serial = document.getElementById("serial");
  const message = document.getElementById("serial-message");
  const start = document.getElementById("start-button");
  const twin = document.getElementById("twin_unit");

  async function checkSerial() {
    const body = new URLSearchParams({ serial: serial.value, csrf: csrf });
    const answer = await fetch("/serial", { method: "POST", body: body, headers: { "X-CSRF-Token": csrf } });
    const result = await answer.json();
    message.textContent = result.message;
    message.className = "message " + (result.ok ? "good" : "bad");
    serial.setAttribute("aria-invalid", result.ok ? "false" : "true");
    return result.ok;
  }

  serial.addEventListener("keydown", async (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    if (await checkSerial()) start.focus();
    else serial.select();
  });

  let lastFocus = null;
  function focusFor(panel) {
    const key = panel.dataset.focus;
    if (key === lastFocus) return;
    lastFocus = key;
    const confirm = document.getElementById("confirm");
    if (confirm) confirm.focus();
    else if (key.startsWith("done-")) {
      const resume = document.getElementById("resume");
      (resume || serial).focus();
      if (!resume) serial.select();
    }
  }

  // Resume uses the simulated unit chosen now (on the twin: the bench "repaired" is a unit without faults).
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (twin && form.getAttribute("action") === "/resume") {
      const field = document.createElement("input");
      field.type = "hidden"; field.name = "twin_unit"; field.value = twin.value;
      form.appendChild(field);
    }
  });

  const run = document.getElementById("run");
  const first = document.getElementById("panel");
  if (first) lastFocus = first.dataset.focus;
  const source = new EventSource("/events");
  source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    run.innerHTML = data.html;
    start.disabled = data.running;
    focusFor(document.getElementById("panel"));
  };
  const panel = document.getElementById("panel");
  if (panel && document.getElementById("confirm")) document.getElementById("confirm").focus();
})();
