// The page's start: the session (sign in, sign out) and the tabs.
import * as api from "./api.js";
import { $, showError } from "./dom.js";
import * as overview from "./overview.js";
import * as memories from "./memories.js";
import * as search from "./search.js";
import * as feed from "./feed.js";
import * as admin from "./admin.js";
import * as detail from "./detail.js";

const tabs = { overview, memories, search, feed, admin };

function showTab(name) {
  for (const button of document.querySelectorAll("#tabs button")) {
    if (button.dataset.tab === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  for (const tab of Object.keys(tabs)) $(`tab-${tab}`).hidden = tab !== name;
  tabs[name].show?.();
}

function signedIn(who) {
  $("sign-in").hidden = true;
  $("main").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = `key ${who.keyId || "(auth off)"}${who.admin ? " · admin" : ""}`;
  for (const node of document.querySelectorAll("[data-admin]")) node.hidden = !who.admin;
  overview.setAdmin(who.admin);
  showTab("overview");
}

function signedOut(error) {
  feed.stop();
  overview.stop();
  detail.close();
  $("main").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("sign-in").hidden = false;
  showError($("sign-in-error"), error && error.code !== "unauthenticated" ? error : error ? "Session ended: sign in again." : "");
}

async function start() {
  api.setSignedOutHandler(signedOut);
  for (const tab of Object.values(tabs)) tab.init();
  detail.init();
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("sign-in-error"), "");
    try {
      const who = await api.signIn($("sign-in-key").value.trim());
      $("sign-in-key").value = "";
      signedIn(who);
    } catch (error) {
      showError($("sign-in-error"), error.message);
    }
  });
  $("sign-out").addEventListener("click", async () => {
    await api.signOut();
    signedOut(null);
  });
  const who = await api.session();
  if (who) signedIn(who);
  else signedOut(null);
}

start();
