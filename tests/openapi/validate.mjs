// Checks the OpenAPI document served by a running daemon:
//   node tests/openapi/validate.mjs BASE_URL ROUTES_FILE [SAMPLES_FILE]
// BASE_URL is the daemon ("http://127.0.0.1:8080"); ROUTES_FILE is the output of
// `revovoice routes` ("METHOD PATTERN MIN_ROLE" per line); SAMPLES_FILE, optional, is a JSON array
// of real responses ({method, route, status, content_type, body}) that must match the document.
// Prints "ok openapi/<check>" or "FAIL openapi/<check>" (with reasons) per check and exits 1 when
// any check failed.
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const ROLES = ["public", "viewer", "supervisor", "manager", "admin"];
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
let failures = 0;

function report(name, problems) {
	if (problems.length === 0) {
		console.log(`ok openapi/${name}`);
		return;
	}
	failures++;
	console.log(`FAIL openapi/${name}`);
	for (const p of problems.slice(0, 40)) console.log(`    ${p}`);
	if (problems.length > 40) console.log(`    ... and ${problems.length - 40} more`);
}

function operations(doc) {
	const out = [];
	for (const [path, item] of Object.entries(doc.paths || {})) {
		for (const m of METHODS) {
			if (item[m]) out.push({ method: m.toUpperCase(), path, op: item[m], item });
		}
	}
	return out;
}

// Every schema of the document, compiled by Ajv in JSON Schema 2020-12 strict mode. Each
// component schema is registered under its own id and local references are rewritten to it.
function makeAjv(doc) {
	const ajv = new Ajv2020({ strict: true, allErrors: true, validateFormats: true });
	addFormats(ajv);
	const rewrite = (v) =>
		JSON.parse(JSON.stringify(v).replaceAll('"#/components/schemas/', '"urn:rv:schema:'));
	for (const [name, s] of Object.entries(doc.components?.schemas || {}))
		ajv.addSchema({ ...rewrite(s), $id: `urn:rv:schema:${name}` });
	return { ajv, rewrite };
}

function schemaSites(doc) {
	const sites = [];
	for (const [name, s] of Object.entries(doc.components?.schemas || {}))
		sites.push([`components.schemas.${name}`, s]);
	for (const [name, p] of Object.entries(doc.components?.parameters || {}))
		if (p.schema) sites.push([`components.parameters.${name}`, p.schema]);
	for (const { method, path, op } of operations(doc)) {
		for (const [ct, media] of Object.entries(op.requestBody?.content || {}))
			if (media.schema) sites.push([`${method} ${path} request ${ct}`, media.schema]);
		for (const [code, r] of Object.entries(op.responses || {}))
			for (const [ct, media] of Object.entries(r.content || {}))
				if (media.schema) sites.push([`${method} ${path} ${code} ${ct}`, media.schema]);
	}
	return sites;
}

function deref(doc, obj) {
	let seen = 0;
	while (obj && obj.$ref && seen++ < 10) {
		if (!obj.$ref.startsWith("#/")) return obj;
		obj = obj.$ref.slice(2).split("/").reduce((o, k) => (o ? o[k] : undefined), doc);
	}
	return obj;
}

async function main() {
	const [base, routesFile, samplesFile] = process.argv.slice(2);
	if (!base || !routesFile) {
		console.error("usage: validate.mjs BASE_URL ROUTES_FILE [SAMPLES_FILE]");
		process.exit(2);
	}

	// fetch: the daemon serves the document as JSON.
	let doc = null;
	{
		const problems = [];
		try {
			const r = await fetch(new URL("/api/openapi.json", base));
			const ct = r.headers.get("content-type") || "";
			if (r.status !== 200) problems.push(`status ${r.status}`);
			if (!ct.startsWith("application/json")) problems.push(`content-type "${ct}"`);
			doc = JSON.parse(await r.text());
		} catch (e) {
			problems.push(String(e));
		}
		report("fetch", problems);
		if (!doc) process.exit(1);
	}

	// schema: the document is valid OpenAPI 3.1 (official schema) and its refs resolve.
	{
		const problems = [];
		const v = new Validator();
		const res = await v.validate(structuredClone(doc));
		if (!res.valid)
			for (const e of res.errors || [])
				problems.push(`${e.instancePath || e.path || ""} ${e.message || JSON.stringify(e)}`);
		if (v.version !== "3.1") problems.push(`version ${v.version}, want 3.1`);
		if (doc.openapi !== "3.1.0") problems.push(`openapi "${doc.openapi}"`);
		try {
			v.resolveRefs();
		} catch (e) {
			problems.push(`refs: ${e.message}`);
		}
		report("schema", problems);
	}

	// jsonschema: every schema in it compiles as strict JSON Schema 2020-12.
	const { ajv, rewrite } = makeAjv(doc);
	{
		const problems = [];
		for (const [where, s] of schemaSites(doc)) {
			try {
				ajv.compile(rewrite(s));
			} catch (e) {
				problems.push(`${where}: ${e.message}`);
			}
		}
		report("jsonschema", problems);
	}

	// operations: each one is documented the same way (id, summary, tag, role, security,
	// path parameters, error responses that use the error schema).
	{
		const problems = [];
		const ids = new Set();
		const tags = new Set((doc.tags || []).map((t) => t.name));
		const errSchema = "#/components/schemas/Error";
		for (const { method, path, op, item } of operations(doc)) {
			const at = `${method} ${path}`;
			if (!op.operationId) problems.push(`${at}: no operationId`);
			else if (ids.has(op.operationId)) problems.push(`${at}: duplicate operationId`);
			ids.add(op.operationId);
			if (!op.summary) problems.push(`${at}: no summary`);
			if (!op.tags?.length) problems.push(`${at}: no tags`);
			for (const t of op.tags || []) if (!tags.has(t)) problems.push(`${at}: undeclared tag ${t}`);
			const role = op["x-min-role"];
			if (!ROLES.includes(role)) problems.push(`${at}: x-min-role "${role}"`);
			const isPublic = Array.isArray(op.security) && op.security.length === 0;
			if ((role === "public") !== isPublic)
				problems.push(`${at}: x-min-role ${role} but security ${JSON.stringify(op.security)}`);
			const codes = Object.keys(op.responses || {});
			if (!codes.some((c) => /^2/.test(c))) problems.push(`${at}: no success response`);
			if (role !== "public" && !codes.includes("401")) problems.push(`${at}: no 401`);
			if (role !== "public" && role !== "viewer" && !codes.includes("403"))
				problems.push(`${at}: no 403`);
			if (op.requestBody && !codes.includes("413")) problems.push(`${at}: body but no 413`);
			for (const c of codes.filter((c) => /^[45]/.test(c))) {
				const r = deref(doc, op.responses[c]);
				const media = Object.values(r?.content || {});
				const s = media[0]?.schema;
				if (!media.length || !(s?.$ref === errSchema || s?.oneOf?.some((x) => x.$ref === errSchema)))
					problems.push(`${at}: ${c} does not use the error schema`);
			}
			const params = [...(item.parameters || []), ...(op.parameters || [])].map((p) => deref(doc, p));
			for (const m of path.matchAll(/\{([^}]+)\}/g)) {
				if (!params.some((p) => p?.in === "path" && p.name === m[1]))
					problems.push(`${at}: path parameter ${m[1]} undeclared`);
			}
		}
		report("operations", problems);
	}

	// routes: the router's table and the document list the same operations with the same roles.
	{
		const problems = [];
		const served = new Map();
		for (const line of readFileSync(routesFile, "utf8").split("\n")) {
			const f = line.trim().split(/\s+/);
			if (f.length === 1 && f[0] === "") continue;
			if (f.length !== 3) {
				problems.push(`routes file: bad line "${line}"`);
				continue;
			}
			served.set(`${f[0].toUpperCase()} ${f[1]}`, f[2]);
		}
		if (served.size === 0) problems.push("routes file lists no routes");
		const documented = new Map(
			operations(doc).map(({ method, path, op }) => [`${method} ${path}`, op["x-min-role"]])
		);
		for (const [k, role] of served) {
			if (!documented.has(k)) problems.push(`served but not documented: ${k}`);
			else if (documented.get(k) !== role)
				problems.push(`${k}: router says ${role}, document says ${documented.get(k)}`);
		}
		for (const k of documented.keys())
			if (!served.has(k)) problems.push(`documented but not served: ${k}`);
		report("routes", problems);
	}

	// responses: real answers of the daemon match what the document says about them.
	if (samplesFile) {
		const problems = [];
		const samples = JSON.parse(readFileSync(samplesFile, "utf8"));
		for (const s of samples) {
			const at = `${s.method} ${s.route} -> ${s.status}`;
			const op = doc.paths?.[s.route]?.[s.method.toLowerCase()];
			if (!op) {
				problems.push(`${at}: no such operation`);
				continue;
			}
			const r = deref(doc, op.responses?.[String(s.status)] || op.responses?.default);
			if (!r) {
				problems.push(`${at}: status not documented`);
				continue;
			}
			if (!r.content) {
				if (s.body !== null && s.body !== undefined && s.body !== "")
					problems.push(`${at}: documented without a body but got one`);
				continue;
			}
			const ct = (s.content_type || "").split(";")[0].trim();
			const media = r.content[ct];
			if (!media) {
				problems.push(`${at}: content-type ${ct} not documented`);
				continue;
			}
			if (ct !== "application/json" || !media.schema) continue;
			const validate = ajv.compile(rewrite(media.schema));
			if (!validate(s.body))
				for (const e of validate.errors)
					problems.push(`${at}: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
		}
		if (samples.length === 0) problems.push("no samples");
		report("responses", problems);
	}

	process.exit(failures ? 1 : 0);
}

main().catch((e) => {
	console.log(`FAIL openapi/run ${e.stack || e}`);
	process.exit(1);
});
