/*
 * keelctl_usage.c — the --help texts of keelctl and of each command (also printed after a
 * usage error of that command).
 */
#include "tools/keelctl.h"

static const char global_flags[] =
    "Global flags:\n"
    "  --endpoints HOST:PORT[,HOST:PORT]  members to talk to (default 127.0.0.1:2379); with\n"
    "                                     several, requests follow NOT_LEADER to the leader\n"
    "  -w, --write-out simple|json|table  output format (default simple; table: get, status,\n"
    "                                     shard-map, the others print as simple)\n"
    "  --timeout MS                       connect and request timeout (default 5000)\n"
    "  --shard-aware                      route requests to the owning shard's port\n"
    "  --hex                              print keys and values as hex (\\x61\\x62)\n"
    "  -h, --help                         this help, or a command's: keelctl put --help\n"
    "  --version                          print the version\n";

static const char overall[] =
    "keelctl: the command-line client of keel (etcdctl's role).\n"
    "\n"
    "Usage: keelctl [global flags] COMMAND [arguments] [flags]\n"
    "\n"
    "Commands:\n"
    "  put        write a key\n"
    "  get        read a key or a range of keys\n"
    "  del        delete a key or a range of keys\n"
    "  txn        run a transaction read from stdin (etcdctl's txn syntax)\n"
    "  compact    compact one shard's history up to a revision\n"
    "  status     per-shard counters\n"
    "  shard-map  the shards' key ranges and ports\n"
    "  member     list, add, remove or promote the cluster's members\n"
    "  endpoint   endpoint status: each endpoint's Raft state per shard\n"
    "  move-leader  hand a shard's leadership to another member\n"
    "\n"
    "Exit codes: 0 ok, 1 server error, 2 usage error, 3 connection error.\n"
    "\n";

static const char *const texts[CTL_CMD_COUNT] = {
    [CTL_CMD_PUT] = "Usage: keelctl put KEY [VALUE] [--prev-kv] [--lease ID]\n"
                    "  Writes KEY = VALUE (VALUE read from stdin when omitted) and prints OK.\n"
                    "  --prev-kv   also print the value it replaced\n"
                    "  --lease ID  lease id in hex (leases are reserved in protocol version 1)\n",
    [CTL_CMD_GET] =
        "Usage: keelctl get KEY [RANGE_END] [flags]\n"
        "  Prints each key on a line, then its value on the next.\n"
        "  --prefix             every key starting with KEY (\"\" with --prefix: all keys)\n"
        "  --from-key           every key >= KEY\n"
        "  --limit N            at most N keys\n"
        "  --rev N              read at revision N (revisions are per shard)\n"
        "  --keys-only          keys only (an empty line in place of each value)\n"
        "  --count-only         print the number of keys only\n"
        "  --sort-by T          key|version|create|modify|value\n"
        "  --order O            ascend|descend\n"
        "  --print-value-only   values only\n",
    [CTL_CMD_DEL] = "Usage: keelctl del KEY [RANGE_END] [--prefix|--from-key] [--prev-kv]\n"
                    "  Deletes the keys and prints how many.\n"
                    "  --prefix    every key starting with KEY\n"
                    "  --from-key  every key >= KEY\n"
                    "  --prev-kv   also print the deleted keys and values\n",
    [CTL_CMD_TXN] =
        "Usage: keelctl txn [-i|--interactive]\n"
        "  Reads a transaction from stdin, in etcdctl's syntax: compares, a blank line,\n"
        "  success requests, a blank line, failure requests. Prints SUCCESS or FAILURE,\n"
        "  then each response after a blank line. Example:\n"
        "    mod(\"key1\") > \"0\"\n"
        "    value(\"key2\") = \"x\"\n"
        "\n"
        "    put key1 \"new value\"\n"
        "    get key2\n"
        "\n"
        "    del key1\n"
        "  Compare targets: ver|version, c|create, m|mod, val|value, lease; operators:\n"
        "  = != < >. Requests: put KEY VALUE [--prev-kv] [--lease ID], get KEY [END]\n"
        "  [get flags], del KEY [END] [--prefix|--from-key] [--prev-kv]. Strings may be\n"
        "  \"quoted\" (\\\" \\\\ \\n \\t \\r \\0 \\xHH escapes) or 'literal'.\n"
        "  -i, --interactive  prompt for each section\n",
    [CTL_CMD_COMPACT] =
        "Usage: keelctl compact REVISION [--physical] [--shard N]\n"
        "  Discards the history of one shard older than REVISION. Revisions are per\n"
        "  shard: --shard is required when the cluster has more than one shard; with one\n"
        "  shard it defaults to 0.\n"
        "  --physical  return once the space is freed\n"
        "  --shard N   the shard to compact\n",
    [CTL_CMD_STATUS] = "Usage: keelctl status\n"
                       "  Per shard: revision, compact revision, keys, memory, WAL bytes and\n"
                       "  client connections.\n",
    [CTL_CMD_SHARD_MAP] = "Usage: keelctl shard-map\n"
                          "  Per shard: its port, first key and end key (empty: unbounded).\n",
    [CTL_CMD_MEMBER] =
        "Usage: keelctl member list [--linearizable]\n"
        "       keelctl member add NAME --peer-urls URL[,URL] [--client-urls URL[,URL]] "
        "[--learner]\n"
        "       keelctl member remove ID\n"
        "       keelctl member promote ID\n"
        "  Member ids are hex, as printed by member list. Changes go to the leader of shard 0\n"
        "  (give every member in --endpoints and keelctl follows NOT_LEADER there).\n"
        "  list: id, status (started/unstarted), name, peer URLs, client URLs, learner;\n"
        "        --linearizable asks shard 0's leader instead of the endpoint's local view\n"
        "  add: prints the new id and the --initial-cluster to start it with\n"
        "       (--initial-cluster-state existing); --learner adds it as a non-voter\n"
        "       (recommended: promote it once endpoint status shows it caught up)\n"
        "  remove: removes a voter or learner; promote: makes a learner a voter.\n"
        "  A membership change is never re-sent after a lost connection: list the members,\n"
        "  then decide.\n",
    [CTL_CMD_ENDPOINT] =
        "Usage: keelctl endpoint status [--cluster]\n"
        "  Asks every endpoint of --endpoints for its Raft state: one row per endpoint and\n"
        "  shard with its member id, role, the shard's leader, term, commit, applied and last\n"
        "  log index, revision, and where the endpoint leads the shard, each peer's lag\n"
        "  (entries the leader holds that the peer is not known to store).\n"
        "  --cluster  ask every member of the cluster (from member list) instead\n"
        "  Exit code: the first failing endpoint's (3 unreachable, 1 server error); the\n"
        "  endpoints that answered are printed anyway.\n",
    [CTL_CMD_MOVE_LEADER] =
        "Usage: keelctl move-leader SHARD|all MEMBER_ID\n"
        "  Hands the leadership of shard SHARD to member MEMBER_ID (hex), and waits until it\n"
        "  leads (or an election timeout passed: LEADER_TRANSFER_FAILED). With all, the\n"
        "  endpoint hands over every shard it leads (draining it before maintenance): give\n"
        "  that member alone in --endpoints.\n",
};

void ctl_usage(FILE *out, enum ctl_command cmd)
{
    if (cmd <= CTL_CMD_NONE || cmd >= CTL_CMD_COUNT) {
        fputs(overall, out);
    } else {
        fputs(texts[cmd], out);
        fputc('\n', out);
    }
    fputs(global_flags, out);
}
