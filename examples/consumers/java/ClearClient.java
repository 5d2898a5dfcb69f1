import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A Clear API client that survives token rotations (Java 11+, JDK only).
 *
 * <p>clear-operator writes the access token into a Secret; mount it as a file (not an env
 * var, not with subPath). Minting a new token revokes the old one at once, and the kubelet
 * copies the new value into the mounted file some time later, so for a short while the file
 * holds a revoked token. The pattern:
 *
 * <ul>
 *   <li>read the token file on every request (a small file in memory: cheap);
 *   <li>on a 401, wait until the file changes (bounded), then retry exactly once.
 * </ul>
 *
 * <p>Configuration: {@code CLEAR_TOKEN_FILE} (default {@code /var/run/clear/accessToken}) and
 * {@code CLEAR_BASE_URL} (default: the {@code baseUrl} file next to the token file). The
 * token is never logged. Thread-safe: share one instance.
 */
public final class ClearClient {
    public static final String TOKEN_HEADER = "x-cleartax-auth-token";
    public static final String DEFAULT_TOKEN_FILE = "/var/run/clear/accessToken";

    private final Path tokenFile;
    private final String baseUrl;
    private final Duration fileLagWait;
    private final Duration timeout;
    private final AtomicLong retriesAfter401 = new AtomicLong();
    // Redirects are not followed (the default): they would carry the token header elsewhere.
    private final HttpClient http =
            HttpClient.newBuilder()
                    .connectTimeout(Duration.ofSeconds(10))
                    .followRedirects(HttpClient.Redirect.NEVER)
                    .build();

    /**
     * @param fileLagWait how long a 401 waits for the kubelet to update the file: its sync
     *     period is 1 minute by default, plus its cache propagation delay
     */
    public ClearClient(Path tokenFile, String baseUrl, Duration fileLagWait, Duration timeout)
            throws IOException {
        this.tokenFile = tokenFile;
        String url = baseUrl != null ? baseUrl : Files.readString(tokenFile.resolveSibling("baseUrl"));
        this.baseUrl = url.strip().replaceAll("/+$", "");
        this.fileLagWait = fileLagWait;
        this.timeout = timeout;
    }

    /** From CLEAR_TOKEN_FILE and CLEAR_BASE_URL; waits up to 2 minutes for a lagging file. */
    public static ClearClient fromEnvironment() throws IOException {
        String file = System.getenv().getOrDefault("CLEAR_TOKEN_FILE", DEFAULT_TOKEN_FILE);
        String url = System.getenv("CLEAR_BASE_URL");
        return new ClearClient(
                Path.of(file), url == null || url.isBlank() ? null : url,
                Duration.ofMinutes(2), Duration.ofSeconds(30));
    }

    public HttpResponse<String> get(String path) throws IOException, InterruptedException {
        return send(HttpRequest.newBuilder(URI.create(baseUrl + path)).GET());
    }

    /**
     * Sends the request with the current token; a 401 is retried once, after the token file
     * changed or fileLagWait passed. Safe for any method: Clear refuses a request with a
     * revoked token before doing anything with it.
     */
    public HttpResponse<String> send(HttpRequest.Builder request)
            throws IOException, InterruptedException {
        String token = readToken();
        HttpResponse<String> response = sendWith(request, token);
        if (response.statusCode() != 401) {
            return response;
        }
        retriesAfter401.incrementAndGet();
        return sendWith(request, waitForNewToken(token));
    }

    /** How many requests met a revoked token and were retried: worth exporting as a metric. */
    public long retriesAfter401() {
        return retriesAfter401.get();
    }

    private String readToken() throws IOException {
        return Files.readString(tokenFile).strip();
    }

    private String waitForNewToken(String revoked) throws IOException, InterruptedException {
        Instant deadline = Instant.now().plus(fileLagWait);
        while (true) {
            String token = readToken();
            if (!token.equals(revoked) || !Instant.now().isBefore(deadline)) {
                return token;
            }
            Thread.sleep(100);
        }
    }

    private HttpResponse<String> sendWith(HttpRequest.Builder request, String token)
            throws IOException, InterruptedException {
        HttpRequest withToken = request.copy().setHeader(TOKEN_HEADER, token).timeout(timeout).build();
        return http.send(withToken, HttpResponse.BodyHandlers.ofString());
    }

    /**
     * Against the Clear simulator the default path checks the token; against Clear, pass the
     * path of a business API. {@code --every MILLIS} repeats the call forever, one line per
     * request (time, status, how long it took, retries so far; never the token or the
     * answer): how the node tests watch a consumer pod through rotations.
     */
    public static void main(String[] args) throws Exception {
        long every = -1;
        int first = 0;
        if (args.length >= 2 && args[0].equals("--every")) {
            every = Long.parseLong(args[1]);
            first = 2;
        }
        String path = args.length > first ? args[first] : "/integration/v1/authz/whoami";
        ClearClient client = fromEnvironment();
        if (every < 0) {
            HttpResponse<String> response = client.get(path);
            System.out.println(response.statusCode() + " " + response.body());
            System.exit(response.statusCode() / 100 == 2 ? 0 : 1);
        }
        while (true) {
            long started = System.currentTimeMillis();
            String status;
            try {
                status = String.valueOf(client.get(path).statusCode());
            } catch (IOException error) { // the caller's view of a failure, like a non-200
                status = error.getClass().getSimpleName();
            }
            long took = System.currentTimeMillis() - started;
            System.out.printf("request at=%.3f status=%s took_ms=%d retries_after_401=%d%n",
                    started / 1000.0, status, took, client.retriesAfter401());
            System.out.flush();
            Thread.sleep(every);
        }
    }
}
