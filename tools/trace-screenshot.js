/*
 * Open a weft trace (Chrome trace-event JSON) in headless Chromium's own
 * DevTools Performance panel and save a screenshot:
 *
 *     node tools/trace-screenshot.js TRACE.json OUT.png [AT [STEPS]]
 *
 * Driven through playwright-core (NODE_PATH must find it; see
 * tools/trace-screenshot.sh).  The panel is the DevTools front end that
 * Chromium itself serves on its remote-debugging port, so nothing is
 * fetched from the network: Debian's Chromium has no chrome://tracing
 * (its legacy viewer is gone), and Perfetto's UI lives on the web.  The
 * trace is handed to the panel's "Load profile" file input; every process
 * track is expanded, and with AT (0..1: where across the trace, or "auto")
 * the view zooms in there by STEPS steps (10).
 */
const { chromium } = require('playwright-core');

const [trace, out, zoomAt, steps] = process.argv.slice(2);
if (!trace || !out) {
	console.error('usage: trace-screenshot.js TRACE.json OUT.png [AT STEPS]');
	process.exit(2);
}
const port = 19000 + (process.pid % 1000);
const events = JSON.parse(require('fs').readFileSync(trace, 'utf8')).traceEvents;
const loops = events.filter((e) => e.ph === 'M' && e.name === 'thread_name').length;

/* Where to zoom (0..1 across the trace), for AT "auto": the cross-loop
 * flow with the most task runs around it, else the busiest millisecond. */
function autoAt() {
	const timed = events.filter((e) => e.ph !== 'M');
	const lo = timed.reduce((m, e) => Math.min(m, e.ts), Infinity);
	const hi = timed.reduce((m, e) => Math.max(m, e.ts + (e.dur || 0)), -Infinity);
	const runs = timed.filter((e) => e.ph === 'X' && e.cat === 'run').map((e) => e.ts);
	runs.sort((a, b) => a - b);
	const below = (t) => { /* runs before t: binary search */
		let a = 0, b = runs.length;
		while (a < b) {
			const m = (a + b) >> 1;
			if (runs[m] < t) a = m + 1; else b = m;
		}
		return a;
	};
	const around = (t) => below(t + 500) - below(t - 500);
	let cands = timed.filter((e) => e.ph === 's').map((e) => e.ts);
	if (!cands.length)
		cands = runs.filter((_, i) => i % 16 === 0);
	let best = cands[0] ?? lo, most = -1;
	for (const t of cands) {
		const n = around(t);
		if (n > most) {
			most = n;
			best = t;
		}
	}
	return (best - lo) / (hi - lo || 1);
}

/* Every element matching pred, through shadow roots. */
function deepFind(pred) {
	const found = [];
	const walk = (root) => {
		for (const el of root.querySelectorAll('*')) {
			if (pred(el))
				found.push(el);
			if (el.shadowRoot)
				walk(el.shadowRoot);
		}
	};
	walk(document);
	return found;
}

(async () => {
	const browser = await chromium.launch({
		executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
		args: ['--no-sandbox', `--remote-debugging-port=${port}`],
	});
	try {
		const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
		await page.goto(`http://127.0.0.1:${port}/devtools/trace_app.html`, { waitUntil: 'load' });
		await page.waitForTimeout(2000);
		await page.keyboard.press('Escape'); /* "connection closed": no page to inspect */
		await page.getByText('Performance', { exact: true }).first().click();
		await page.waitForTimeout(1000);
		const input = await page.evaluateHandle(
			(src) => eval(src)((el) => el.tagName === 'INPUT' && el.type === 'file')[0],
			`(${deepFind.toString()})`);
		if (!input.asElement())
			throw new Error('no file input in the Performance panel');
		await input.asElement().setInputFiles(trace);
		await page.waitForTimeout(4000);
		/* close the shortcuts pop-up and the sidebar: room for the tracks */
		await page.keyboard.press('Escape');
		const close = page.getByRole('button', { name: /close/i });
		for (let i = 0; i < await close.count(); i++)
			await close.nth(i).click({ timeout: 1000 }).catch(() => {});
		const sidebar = page.getByRole('button', { name: /sidebar/i }).first();
		await sidebar.click({ timeout: 2000 }).catch(() => {});
		await page.waitForTimeout(500);
		/* expand the process group: its header is the first row of the
		 * flame chart, drawn on a canvas (no element to click) */
		const chart = await page.evaluateHandle(
			(src) => eval(src)((el) => el.tagName === 'CANVAS' &&
					      el.getBoundingClientRect().height > 200)[0],
			`(${deepFind.toString()})`);
		const box = await chart.asElement().boundingBox();
		await page.mouse.click(box.x + box.width / 2, box.y + box.height - 10); /* focus */
		await page.waitForTimeout(300);
		await page.mouse.click(box.x + 9, box.y + 24);
		await page.waitForTimeout(300);
		/* then each loop's track, from the last up (an expanded track
		 * pushes the ones below it down): rows of 21 px below the
		 * process's header */
		for (let i = loops - 1; i >= 0; i--) {
			await page.mouse.click(box.x + 20, box.y + 42 + 21 * i);
			await page.waitForTimeout(300);
		}
		if (zoomAt !== undefined)
			await zoom(page, box, zoomAt === 'auto' ? autoAt() : Number(zoomAt),
				   Number(steps || 10));
		await page.waitForTimeout(1500);
		await page.screenshot({ path: out });
	} finally {
		await browser.close();
	}
})().catch((e) => {
	console.error('trace-screenshot: ' + e.message);
	process.exit(1);
});

/* Zoom the flame chart in around fraction `at` of its width: W zooms in
 * at the mouse (DevTools' flame chart keys), one animated step a time. */
async function zoom(page, box, at, steps) {
	await page.mouse.move(box.x + box.width * at, box.y + box.height / 2);
	for (let i = 0; i < steps; i++) {
		await page.keyboard.down('w');
		await page.waitForTimeout(120);
		await page.keyboard.up('w');
		await page.waitForTimeout(150);
	}
}
