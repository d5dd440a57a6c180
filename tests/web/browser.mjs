// Headless Debian Chromium driven by playwright-core, for the page tests. Nothing is downloaded:
// the browser is /usr/bin/chromium (scripts/setup-browser installs it), and each page gets a
// fresh profile directory that is removed afterwards.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));

export const CHROMIUM = process.env.LORE_CHROMIUM ?? "/usr/bin/chromium";

const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * A browser page with its own fresh profile. `problems` collects console errors and uncaught
 * page errors; `expectedStatuses` lists HTTP statuses the test provokes on purpose (Chromium
 * logs every 4xx response as a console error "Failed to load resource: ... status of 415").
 */
export async function openPage({ locale = "zh-CN", viewport = { width: 1280, height: 900 } } = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run scripts/setup-browser (apt-get install chromium)`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "lore-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    locale,
    viewport,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.stack ?? error}`));
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { page, problems, close };
}

/** Console errors other than the logged responses of `expectedStatuses`. */
export function unexpectedProblems(problems, expectedStatuses = []) {
  return problems.filter(
    (p) => !expectedStatuses.some((status) => p.includes(`the server responded with a status of ${status}`)),
  );
}

/** Where screenshots go: $LORE_SCREENSHOTS, else target/web-screenshots (never committed). */
export function screenshotDir() {
  const dir =
    process.env.LORE_SCREENSHOTS ??
    path.join(process.env.CARGO_TARGET_DIR ?? path.resolve(HERE, "../../target"), "web-screenshots");
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Logs a step with the seconds since the start, so a slow step shows in the test output. */
export function stepper() {
  const start = Date.now();
  return (what) => console.log(`[${((Date.now() - start) / 1000).toFixed(1)}s] ${what}`);
}
