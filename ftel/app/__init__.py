"""The composition root: the `ftel` console script and every command that wires packages together (`ftel run`,
the live view, the simulator's and the gateway's commands, the load test, the stack and auth commands). The only
package that imports gateway/, simulators/ and loadtest/; nothing imports it (docs/architecture.md, the
import-linter contracts in pyproject.toml)."""
