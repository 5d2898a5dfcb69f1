import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadLocalRandom;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Rotation test for {@link ClearClient}, against the Clear simulator (clear-sandbox). JDK
 * only: {@code javac -d build *.java && java -cp build RotationTest}; exits 1 on a failure.
 *
 * <p>The test plays clear-operator and the kubelet: it mints tokens (each mint revokes the
 * previous token at once) and copies each new token into the token file only after a lag, the
 * way the kubelet's atomic writer updates a mounted Secret (a new timestamped directory, then
 * an atomic rename of the {@code ..data} symlink). Three consumers call the simulator's whoami
 * endpoint in a loop meanwhile:
 *
 * <ul>
 *   <li>robust: {@link ClearClient} (re-reads the file per request, retries once on a 401):
 *       no failures;
 *   <li>reread-only: re-reads the file per request but never retries: fails in the lag windows;
 *   <li>naive: reads the token once: fails on every request after the first rotation.
 * </ul>
 *
 * <p>Needs CLEAR_SANDBOX_URL (the simulator, admin API on); examples/consumers/test.sh sets it.
 * Tokens and client secrets are never printed.
 */
public final class RotationTest {
    static final String WHOAMI = "/integration/v1/authz/whoami";
    static final int ROTATIONS = Integer.parseInt(System.getenv().getOrDefault("ROTATIONS", "4"));
    static final long REQUEST_PAUSE_MS = 20;
    static final long[] LAG_MS = {300, 800}; // mint -> new token in the file (kubelet sync lag)
    static final long[] GAP_MS = {800, 1200}; // file update -> next mint

    static final HttpClient HTTP =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    static final SecureRandom RANDOM = new SecureRandom();
    static final long T0 = System.nanoTime();

    /** Nanoseconds since the test started: small, so plain comparisons are safe. */
    static long now() {
        return System.nanoTime() - T0;
    }

    public static void main(String[] args) throws Exception {
        Sandbox sandbox = new Sandbox(System.getenv("CLEAR_SANDBOX_URL"));
        Map<String, Callable<Void>> tests =
                Map.of(
                        "rotations without failed requests", () -> rotationsWithoutFailedRequests(sandbox),
                        "gives up after one retry when no new token comes", () -> givesUpAfterOneRetry(sandbox));
        int failed = 0;
        for (var test : new java.util.TreeMap<>(tests).entrySet()) {
            try {
                test.getValue().call();
                System.out.println("  java ok:   " + test.getKey());
            } catch (Throwable error) {
                failed++;
                System.out.println("  java FAIL: " + test.getKey() + ": " + error);
            }
        }
        System.out.println("java: " + (tests.size() - failed) + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    static Void rotationsWithoutFailedRequests(Sandbox sandbox) throws Exception {
        String name = "java-rotation-" + hex(4);
        String secret = sandbox.addClient(name);
        Path dir = Files.createTempDirectory("clear-consumer-");
        try {
            KubeletVolume volume = new KubeletVolume(dir);
            volume.write(Map.of("accessToken", sandbox.mint(secret), "baseUrl", sandbox.url));
            Path tokenFile = dir.resolve("accessToken");

            ClearClient robust = new ClearClient(tokenFile, null, Duration.ofSeconds(10), Duration.ofSeconds(10));
            String naiveToken = Files.readString(tokenFile).strip(); // read once, at start-up
            Consumer r = new Consumer(() -> robust.get(WHOAMI).statusCode());
            Consumer rr = new Consumer(() -> whoami(sandbox, Files.readString(tokenFile).strip()));
            Consumer n = new Consumer(() -> whoami(sandbox, naiveToken));
            List<Consumer> consumers = List.of(r, rr, n);
            consumers.forEach(Thread::start);

            List<Long> mintTimes = new ArrayList<>();
            try {
                for (int i = 0; i < ROTATIONS; i++) {
                    Thread.sleep(between(GAP_MS));
                    String token = sandbox.mint(secret); // the old token is revoked now
                    // NB: the instant after the mint is answered, not before it is sent: a
                    // request that starts in between may still be served with the old token.
                    mintTimes.add(now());
                    Thread.sleep(between(LAG_MS)); // ...and the file still holds it
                    volume.write(Map.of("accessToken", token, "baseUrl", sandbox.url));
                }
                Thread.sleep(1000);
            } finally {
                for (Consumer c : consumers) c.stopping = true;
                for (Consumer c : consumers) c.join(30_000);
            }
            check(consumers.stream().noneMatch(Thread::isAlive), "a consumer did not stop");

            System.out.printf("  java robust     : %d requests, %d failed, %d retried after a 401%n",
                    r.results.size(), r.failures(Long.MIN_VALUE).size(), robust.retriesAfter401());
            System.out.printf("  java reread-only: %d requests, %d failed%n",
                    rr.results.size(), rr.failures(Long.MIN_VALUE).size());
            System.out.printf("  java naive      : %d requests, %d failed%n",
                    n.results.size(), n.failures(Long.MIN_VALUE).size());
            long[] calls = sandbox.tokenCalls(name);
            System.out.printf("  java simulator  : %d tokens minted (1 + %d rotations), %d token calls%n",
                    calls[1], ROTATIONS, calls[0]);

            // Every rotation happened: exactly one mint each, all of them answered 200.
            check(calls[0] == 1 + ROTATIONS && calls[1] == 1 + ROTATIONS,
                    "expected " + (1 + ROTATIONS) + " token calls, all 200");
            long firstMint = mintTimes.get(0);
            long lastMint = mintTimes.get(mintTimes.size() - 1);
            // The robust consumer: no failed request, through every rotation, and the gap was
            // real (it did meet a revoked token and retried).
            check(r.failures(Long.MIN_VALUE).isEmpty(), "robust consumer failed: " + byOutcome(r.failures(Long.MIN_VALUE)));
            check(r.successes(lastMint, Long.MAX_VALUE) > 0, "robust consumer: no success after the last rotation");
            check(robust.retriesAfter401() > 0, "robust consumer never met a revoked token");
            // Re-reading without the retry is not enough: the file lags the mint.
            check(!rr.failures(Long.MIN_VALUE).isEmpty(), "reread-only consumer did not fail");
            check(rr.failures(Long.MIN_VALUE).stream().allMatch("401"::equals),
                    "reread-only consumer failed with other than 401: " + byOutcome(rr.failures(Long.MIN_VALUE)));
            // The naive consumer works until the first rotation, and never after it.
            check(n.successes(Long.MIN_VALUE, firstMint) > 0, "naive consumer: no success before the first rotation");
            check(!n.failures(firstMint).isEmpty(), "naive consumer: no failure after the first rotation");
            check(n.successes(firstMint, Long.MAX_VALUE) == 0, "naive consumer succeeded after the first rotation");
            return null;
        } finally {
            deleteTree(dir);
        }
    }

    /** Deleting the API client revokes its token with no replacement: one bounded retry, then the 401. */
    static Void givesUpAfterOneRetry(Sandbox sandbox) throws Exception {
        String name = "java-revoked-" + hex(4);
        String secret = sandbox.addClient(name);
        Path dir = Files.createTempDirectory("clear-consumer-");
        try {
            new KubeletVolume(dir).write(Map.of("accessToken", sandbox.mint(secret), "baseUrl", sandbox.url));
            ClearClient client = new ClearClient(dir.resolve("accessToken"), null, Duration.ofSeconds(1), Duration.ofSeconds(10));
            check(client.get(WHOAMI).statusCode() == 200, "the fresh token did not work");
            sandbox.deleteClient(name);
            long started = System.nanoTime();
            int status = client.get(WHOAMI).statusCode();
            double waited = (System.nanoTime() - started) / 1e9;
            check(status == 401, "expected 401, got " + status);
            check(client.retriesAfter401() == 1, "expected exactly 1 retry, got " + client.retriesAfter401());
            check(waited >= 1.0 && waited < 5.0, "waited " + waited + " s, expected 1 s to 5 s");
            return null;
        } finally {
            deleteTree(dir);
        }
    }

    /** Calls a status-returning function in a loop until stopped; records (start, outcome). */
    static final class Consumer extends Thread {
        final Callable<Integer> call;
        final List<long[]> results = new CopyOnWriteArrayList<>(); // {start nanos, status or -1}
        volatile boolean stopping;

        Consumer(Callable<Integer> call) {
            this.call = call;
            setDaemon(true);
        }

        @Override
        public void run() {
            while (!stopping) {
                long started = now();
                int outcome;
                try {
                    outcome = call.call();
                } catch (Exception error) { // a failure seen by the caller, like a non-200
                    outcome = -1;
                }
                results.add(new long[] {started, outcome});
                try {
                    Thread.sleep(REQUEST_PAUSE_MS);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }

        List<String> failures(long after) {
            List<String> out = new ArrayList<>();
            for (long[] r : results) if (r[1] != 200 && r[0] >= after) out.add(String.valueOf(r[1]));
            return out;
        }

        long successes(long after, long before) {
            return results.stream().filter(r -> r[1] == 200 && r[0] >= after && r[0] < before).count();
        }
    }

    /** The simulator, driven the way the operator uses it, plus its admin API. */
    static final class Sandbox {
        final String url;

        Sandbox(String url) {
            if (url == null || url.isBlank()) throw new IllegalStateException("CLEAR_SANDBOX_URL is not set");
            this.url = url.replaceAll("/+$", "");
        }

        String addClient(String name) throws Exception {
            String secret = hex(24);
            String body = String.format(
                    "{\"name\":\"%s\",\"clientSecret\":\"%s\",\"workspace\":\"consumer-test\","
                            + "\"environment\":\"sandbox\",\"products\":[\"GST\"],\"tokenLifetime\":\"1h\"}",
                    name, secret);
            var response = send(HttpRequest.newBuilder(URI.create(url + "/_sandbox/clients"))
                    .header("content-type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body)));
            check(response.statusCode() == 201, "adding sandbox client " + name + ": HTTP " + response.statusCode());
            return secret;
        }

        String mint(String secret) throws Exception {
            var response = send(HttpRequest.newBuilder(URI.create(url + "/integration/v1/authz/token"))
                    .header("x-clear-client-secret", secret));
            check(response.statusCode() == 200, "minting a token: HTTP " + response.statusCode());
            Matcher m = Pattern.compile("\"access[_-]token\"\\s*:\\s*\"([^\"]+)\"").matcher(response.body());
            check(m.find(), "no access_token in the mint answer");
            return m.group(1);
        }

        /** {all token calls, those answered 200} for one client, from the admin API. */
        long[] tokenCalls(String name) throws Exception {
            var response = send(HttpRequest.newBuilder(URI.create(url + "/_sandbox/counts")));
            check(response.statusCode() == 200, "reading counts: HTTP " + response.statusCode());
            String client = jsonObjectAfter(response.body(), "\"" + name + "\"");
            // Nested byStatus/byDay hold no "total" key, so the first "total" is the client's.
            Matcher total = Pattern.compile("\"total\"\\s*:\\s*(\\d+)").matcher(client);
            Matcher ok = Pattern.compile("\"byStatus\"\\s*:\\s*\\{[^}]*\"200\"\\s*:\\s*(\\d+)").matcher(client);
            check(total.find(), "no total in the counts of " + name);
            return new long[] {Long.parseLong(total.group(1)), ok.find() ? Long.parseLong(ok.group(1)) : 0};
        }

        void deleteClient(String name) throws Exception {
            var response = send(HttpRequest.newBuilder(URI.create(url + "/_sandbox/clients/" + name)).DELETE());
            check(response.statusCode() == 204, "deleting sandbox client " + name + ": HTTP " + response.statusCode());
        }
    }

    /**
     * A Secret volume as the kubelet's atomic writer lays it out: KEY -> ..data/KEY, and
     * ..data -> ..TIMESTAMP, swapped by one rename, so a reader sees all old or all new.
     */
    static final class KubeletVolume {
        final Path dir;
        final List<Path> generations = new ArrayList<>();

        KubeletVolume(Path dir) {
            this.dir = dir;
        }

        void write(Map<String, String> data) throws IOException {
            Path fresh = Files.createDirectory(dir.resolve(".." + System.currentTimeMillis() + "." + generations.size()));
            for (var entry : data.entrySet()) Files.writeString(fresh.resolve(entry.getKey()), entry.getValue());
            Path tmpLink = Files.createSymbolicLink(dir.resolve("..data_tmp"), fresh.getFileName());
            Files.move(tmpLink, dir.resolve("..data"), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            for (String key : data.keySet()) {
                Path link = dir.resolve(key);
                if (!Files.isSymbolicLink(link)) Files.createSymbolicLink(link, Path.of("..data", key));
            }
            generations.add(fresh);
            if (generations.size() > 2) deleteTree(generations.remove(0)); // a reader may be in the last one
        }
    }

    static int whoami(Sandbox sandbox, String token) throws Exception {
        return send(HttpRequest.newBuilder(URI.create(sandbox.url + WHOAMI)).header(ClearClient.TOKEN_HEADER, token))
                .statusCode();
    }

    static HttpResponse<String> send(HttpRequest.Builder request) throws Exception {
        return HTTP.send(request.timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
    }

    /** The balanced {...} object that follows key in json (enough for the simulator's counts). */
    static String jsonObjectAfter(String json, String key) {
        int start = json.indexOf('{', json.indexOf(key) + key.length());
        check(json.contains(key) && start >= 0, "no " + key + " in the answer");
        int depth = 0;
        for (int i = start; i < json.length(); i++) {
            if (json.charAt(i) == '{') depth++;
            else if (json.charAt(i) == '}' && --depth == 0) return json.substring(start, i + 1);
        }
        throw new AssertionError("unbalanced JSON after " + key);
    }

    static void deleteTree(Path path) throws IOException {
        if (Files.isDirectory(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
            try (var entries = Files.list(path)) {
                for (Path entry : (Iterable<Path>) entries::iterator) deleteTree(entry);
            }
        }
        Files.deleteIfExists(path);
    }

    /** {outcome=count}: a short failure message. */
    static Map<String, Long> byOutcome(List<String> outcomes) {
        return outcomes.stream().collect(java.util.stream.Collectors.groupingBy(o -> o, java.util.TreeMap::new,
                java.util.stream.Collectors.counting()));
    }

    static long between(long[] range) {
        return ThreadLocalRandom.current().nextLong(range[0], range[1] + 1);
    }

    static String hex(int bytes) {
        byte[] b = new byte[bytes];
        RANDOM.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    static void check(boolean condition, String message) {
        if (!condition) throw new AssertionError(message);
    }
}
