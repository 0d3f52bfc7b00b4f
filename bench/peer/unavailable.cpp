// jetsource-bench peer-postgres when the bench was built without libpq (libpq-dev missing at
// configure time): says so and skips; `scripts/install-deps.sh bench` then a reconfigure builds it.
#include "../bench.hpp"

namespace bench {

void run_peer_postgres(const env&) {
  note(
      "peer-postgres: not built (libpq-dev was missing when the bench was configured): run "
      "scripts/install-deps.sh bench and reconfigure");
  line("peer-postgres")
      .kv("work", "setup")
      .kv("skipped", 1)
      .kv("reason", "built_without_libpq")
      .print();
}

}  // namespace bench
