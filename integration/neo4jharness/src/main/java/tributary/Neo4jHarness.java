package tributary;

import java.io.InputStream;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilders;

/**
 * Runs an in-process Neo4j from Neo4j's test harness for Tributary's Go
 * tests: prints the Bolt URI on one line, then serves until stdin closes
 * (the Go test closes it, or dies, which closes it too).
 */
public final class Neo4jHarness {
    public static void main(String[] args) throws Exception {
        Neo4j neo4j = Neo4jBuilders.newInProcessBuilder().withDisabledServer().build();
        try {
            System.out.println(neo4j.boltURI());
            System.out.flush();
            InputStream in = System.in;
            byte[] buf = new byte[256];
            while (in.read(buf) >= 0) {
                // keep serving until the parent closes our stdin
            }
        } finally {
            neo4j.close();
        }
    }
}
