// A small command line around isomorphic-git (a third git implementation, JavaScript) for the e2e tests.
//   node cli.mjs clone URL DIR        node cli.mjs fetch DIR        node cli.mjs log DIR REF
//   node cli.mjs commit DIR PATH MESSAGE [TEXT]  (without TEXT: the file as it is on disk)
//   node cli.mjs branch DIR NAME (create and check out)        node cli.mjs push DIR REF [--force | --delete]
// The key comes from DRIFTSTONE_KEY (sent as the Basic password); without it no credentials are offered.
// Prints one JSON line; exits 1 with {"error", "code", "status"} when isomorphic-git throws.
import fs from "node:fs";
import path from "node:path";
import git from "isomorphic-git";
import http from "isomorphic-git/http/node";

const key = process.env.DRIFTSTONE_KEY;
const onAuth = () => (key ? { username: "agent", password: key } : { cancel: true });
const author = { name: "Iso Agent", email: "iso@example.test" };
const [command, ...args] = process.argv.slice(2);

const commands = {
  async clone(url, dir) {
    await git.clone({ fs, http, dir, url, onAuth, singleBranch: false });
    return { head: await git.resolveRef({ fs, dir, ref: "HEAD" }) };
  },
  async fetch(dir) {
    const result = await git.fetch({ fs, http, dir, onAuth, singleBranch: false });
    return { fetchHead: result.fetchHead };
  },
  async log(dir, ref) {
    const commits = await git.log({ fs, dir, ref });
    return { oids: commits.map((c) => c.oid) };
  },
  async commit(dir, file, message, text) {
    if (text !== undefined) {
      fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      fs.writeFileSync(path.join(dir, file), text);
    }
    await git.add({ fs, dir, filepath: file });
    return { oid: await git.commit({ fs, dir, message, author }) };
  },
  async branch(dir, name) {
    await git.branch({ fs, dir, ref: name, checkout: true });
    return { branch: name };
  },
  async push(dir, ref, flag) {
    const result = await git.push({
      fs, http, dir, ref, remoteRef: ref, onAuth, force: flag === "--force", delete: flag === "--delete",
    });
    return { ok: result.ok, refs: result.refs };
  },
};

try {
  console.log(JSON.stringify(await commands[command](...args)));
} catch (error) {
  console.log(JSON.stringify({ error: String(error.message), code: error.code, status: error.data?.statusCode }));
  process.exit(1);
}
