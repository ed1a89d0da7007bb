// A small command line around JGit (Java: Eclipse, Gerrit, Jenkins) for the e2e tests, with the commands and
// answers of ../isogit/cli.mjs:
//   clone URL DIR        fetch DIR        log DIR REF
//   commit DIR PATH MESSAGE [TEXT] (without TEXT: the file as it is on disk)
//   branch DIR NAME (create and check out)
//   push DIR REF [--force | --delete]
// The key comes from DRIFTSTONE_KEY (sent as the Basic password); without it no credentials are offered.
// Prints one JSON line; exits 1 with {"error", "type"} when JGit throws.
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.eclipse.jgit.api.Git;
import org.eclipse.jgit.lib.ObjectId;
import org.eclipse.jgit.lib.PersonIdent;
import org.eclipse.jgit.revwalk.RevCommit;
import org.eclipse.jgit.transport.CredentialsProvider;
import org.eclipse.jgit.transport.PushResult;
import org.eclipse.jgit.transport.RefSpec;
import org.eclipse.jgit.transport.RemoteRefUpdate;
import org.eclipse.jgit.transport.UsernamePasswordCredentialsProvider;

public class JGitClient {
    private static final PersonIdent AUTHOR = new PersonIdent("JGit Agent", "jgit@example.test");

    public static void main(String[] args) {
        String key = System.getenv("DRIFTSTONE_KEY");
        CredentialsProvider credentials = key == null ? null : new UsernamePasswordCredentialsProvider("agent", key);
        try {
            System.out.println(json(run(args, credentials)));
        } catch (Exception error) {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("error", String.valueOf(error.getMessage()));
            out.put("type", error.getClass().getSimpleName());
            System.out.println(json(out));
            System.exit(1);
        }
    }

    private static Map<String, Object> run(String[] args, CredentialsProvider credentials) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        switch (args[0]) {
            case "clone": {
                try (Git git = Git.cloneRepository().setURI(args[1]).setDirectory(new File(args[2]))
                        .setCloneAllBranches(true).setCredentialsProvider(credentials).call()) {
                    out.put("head", git.getRepository().resolve("HEAD").name());
                }
                return out;
            }
            case "fetch": {
                try (Git git = Git.open(new File(args[1]))) {
                    git.fetch().setRemote("origin").setRemoveDeletedRefs(true).setCredentialsProvider(credentials).call();
                    ObjectId main = git.getRepository().resolve("refs/remotes/origin/main");
                    out.put("fetchHead", main == null ? null : main.name());
                }
                return out;
            }
            case "log": {
                try (Git git = Git.open(new File(args[1]))) {
                    List<Object> oids = new ArrayList<>();
                    for (RevCommit commit : git.log().add(git.getRepository().resolve(args[2])).call()) {
                        oids.add(commit.name());
                    }
                    out.put("oids", oids);
                }
                return out;
            }
            case "commit": {
                try (Git git = Git.open(new File(args[1]))) {
                    if (args.length > 4) {
                        File file = new File(args[1], args[2]);
                        file.getParentFile().mkdirs();
                        Files.write(file.toPath(), args[4].getBytes(StandardCharsets.UTF_8));
                    }
                    git.add().addFilepattern(args[2]).call();
                    out.put("oid", git.commit().setMessage(args[3]).setAuthor(AUTHOR).setCommitter(AUTHOR).call().name());
                }
                return out;
            }
            case "branch": {
                try (Git git = Git.open(new File(args[1]))) {
                    git.checkout().setCreateBranch(true).setName(args[2]).call();
                    out.put("branch", args[2]);
                }
                return out;
            }
            case "push": {
                String ref = "refs/heads/" + args[2];
                String flag = args.length > 3 ? args[3] : "";
                String spec = flag.equals("--delete") ? ":" + ref : (flag.equals("--force") ? "+" : "") + ref + ":" + ref;
                Map<String, Object> refs = new LinkedHashMap<>();
                try (Git git = Git.open(new File(args[1]))) {
                    for (PushResult result : git.push().setRemote("origin").setRefSpecs(new RefSpec(spec))
                            .setCredentialsProvider(credentials).call()) {
                        for (RemoteRefUpdate update : result.getRemoteUpdates()) {
                            Map<String, Object> one = new LinkedHashMap<>();
                            one.put("status", update.getStatus().name());
                            one.put("message", update.getMessage());
                            refs.put(update.getRemoteName(), one);
                        }
                    }
                }
                out.put("refs", refs);
                return out;
            }
            default:
                throw new IllegalArgumentException("unknown command " + args[0]);
        }
    }

    private static String json(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof Map) {
            StringBuilder out = new StringBuilder("{");
            for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
                if (out.length() > 1) {
                    out.append(',');
                }
                out.append(json(String.valueOf(entry.getKey()))).append(':').append(json(entry.getValue()));
            }
            return out.append('}').toString();
        }
        if (value instanceof List) {
            StringBuilder out = new StringBuilder("[");
            for (Object item : (List<?>) value) {
                if (out.length() > 1) {
                    out.append(',');
                }
                out.append(json(item));
            }
            return out.append(']').toString();
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : value.toString().toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
