/*
 * sim_main.c — keel_sim's command line: one seed (--seed, with --verbose for the trace), or many
 * (--seeds N from --first-seed) with a progress line. A failure prints the seed, the step, the
 * checker that fired and the command line that replays it; a raft ASSERT (SIGABRT) prints the
 * same from the signal handler. --check-replay runs a seed twice and compares the trace hashes.
 */
#include "tests/sim/sim.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *sim_argv0 = "keel_sim";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: keel_sim [--seed S | --seeds N [--first-seed S]] [--steps K] [--nodes N]\n"
            "                [--groups G] [--jobs J] [--verbose] [--check-replay] [--keep-going]\n"
            "  --seed S        one run of seed S (prints its stats and trace hash)\n"
            "  --seeds N       runs N seeds, from --first-seed (default 1), with a progress line\n"
            "  --steps K       steps per run (one step = %u ms simulated; default %u)\n"
            "  --nodes N       nodes per cluster, 1..%u (default: 3 or 5, chosen per seed)\n"
            "  --groups G      Raft groups per node, 1..%u (default: 2 or 3, chosen per seed)\n"
            "  --verbose       print the trace of a --seed run\n"
            "  --check-replay  run --seed twice and fail unless both traces hash the same\n"
            "  --jobs J        with --seeds: run J seeds at a time (one process each)\n"
            "  --keep-going    with --seeds: report every failing seed instead of stopping\n"
            "  --inject BUG    plant a bug to see a checker fire: early-ack, stale-read,\n"
            "                  vote-grant (tests/sim/sim_checkers.sh)\n",
            SIM_TICK_MS, SIM_STEPS_DEFAULT, SIM_NODES_MAX, SIM_GROUPS_MAX);
}

static const char *const inject_names[] = {"none", "early-ack", "stale-read", "vote-grant"};

static void replay_line(char *buf, size_t cap, const struct sim_options *opt, u32 nodes, u32 groups)
{
    int n = snprintf(buf, cap, "%s --seed %llu --steps %u --nodes %u --groups %u --verbose",
                     sim_argv0, (unsigned long long)opt->seed, opt->steps, nodes, groups);
    if (opt->inject && n > 0 && (size_t)n < cap) {
        snprintf(buf + n, cap - (size_t)n, " --inject %s", inject_names[opt->inject]);
    }
}

/* A raft or sim ASSERT aborts: say which run it was and how to replay it. */
static void on_abort(int sig)
{
    struct sim *s = sim_current;
    if (s) {
        char line[640], cmd[384];
        replay_line(cmd, sizeof cmd, &s->opt, s->nodes, s->groups);
        int n =
            snprintf(line, sizeof line,
                     "keel_sim: FAIL seed %llu step %u (%llu ms): abort (an ASSERT above)\n"
                     "replay: %s\n",
                     (unsigned long long)s->opt.seed, s->step, (unsigned long long)s->now_ms, cmd);
        if (n > 0) (void)!write(STDERR_FILENO, line, (size_t)n);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void report_failure(const struct sim_options *opt, const struct sim_result *res)
{
    char cmd[384];
    replay_line(cmd, sizeof cmd, opt, res->nodes, res->groups);
    fprintf(stderr, "keel_sim: FAIL seed %llu step %u checker %s: %s\nreplay: %s\n",
            (unsigned long long)opt->seed, res->step, res->checker, res->msg, cmd);
}

/* One run; with check_replay a second run of the seed must hash the same trace (the exit
 * status then speaks of determinism only, whatever the seed's outcome). */
static int run_one(const struct sim_options *opt, bool check_replay)
{
    struct sim_result res;
    int rc = sim_run(opt, &res);
    if (rc) {
        report_failure(opt, &res);
        printf("seed %llu FAILED at step %u; trace hash %016llx\n", (unsigned long long)opt->seed,
               res.step, (unsigned long long)res.trace_hash);
    } else {
        printf("seed %llu ok: %s; trace hash %016llx\n", (unsigned long long)opt->seed, res.stats,
               (unsigned long long)res.trace_hash);
    }
    if (!check_replay) return rc;
    struct sim_options quiet = *opt;
    quiet.verbose = false;
    struct sim_result again;
    sim_run(&quiet, &again);
    if (again.trace_hash != res.trace_hash || again.failed != res.failed) {
        fprintf(stderr,
                "keel_sim: FAIL seed %llu does not replay: trace hash %016llx, then "
                "%016llx\n",
                (unsigned long long)opt->seed, (unsigned long long)res.trace_hash,
                (unsigned long long)again.trace_hash);
        return 1;
    }
    printf("seed %llu replays: trace hash %016llx twice\n", (unsigned long long)opt->seed,
           (unsigned long long)again.trace_hash);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs one seed in a child process, so that an ASSERT (abort) in one seed neither stops the
 * others nor hides its report; the child prints its own failure. */
static pid_t spawn_seed(const struct sim_options *opt)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("keel_sim: fork");
        exit(2);
    }
    if (pid > 0) return pid;
    struct sim_result res;
    if (sim_run(opt, &res)) {
        report_failure(opt, &res);
        _exit(1);
    }
    _exit(0);
}

struct many {
    u64 done, failures, count;
    double start, shown;
    bool tty;
};

static void many_progress(struct many *mp, bool last)
{
    double t = now_s();
    if (!last && t - mp->shown < (mp->tty ? 0.5 : 30.0)) return;
    fprintf(stderr, "%sseeds %llu/%llu (%.1f%%), %llu failed, %.1f s, %.1f seeds/s%s",
            mp->tty ? "\r" : "", (unsigned long long)mp->done, (unsigned long long)mp->count,
            100.0 * (double)mp->done / (double)mp->count, (unsigned long long)mp->failures,
            t - mp->start, (double)mp->done / (t - mp->start), mp->tty ? "" : "\n");
    mp->shown = t;
}

/* Waits for one child; false when it failed. */
static bool reap_one(struct many *mp)
{
    int status;
    pid_t pid = wait(&status);
    if (pid < 0) {
        perror("keel_sim: wait");
        exit(2);
    }
    mp->done++;
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) mp->failures++;
    many_progress(mp, false);
    return ok;
}

static int run_many(struct sim_options opt, u64 first, u64 count, u32 jobs, bool keep_going)
{
    struct many mp = {.count = count, .start = now_s(), .tty = isatty(STDERR_FILENO) != 0};
    mp.shown = mp.start;
    u32 running = 0;
    bool stop = false;
    for (u64 i = 0; i < count && !stop; i++) {
        if (running == jobs) {
            running--;
            stop = !reap_one(&mp) && !keep_going;
            if (stop) break;
        }
        opt.seed = first + i;
        spawn_seed(&opt);
        running++;
    }
    while (running) {
        running--;
        reap_one(&mp);
    }
    many_progress(&mp, true);
    if (mp.tty) fputc('\n', stderr);
    printf("keel_sim: %llu of %llu seeds from %llu run, %u steps each: %llu failed (%.1f s)\n",
           (unsigned long long)mp.done, (unsigned long long)count, (unsigned long long)first,
           opt.steps, (unsigned long long)mp.failures, now_s() - mp.start);
    return mp.failures ? 1 : 0;
}

static bool parse_inject(const char *arg, u8 *out)
{
    for (u8 i = 1; i < KEEL_ARRAY_LEN(inject_names); i++) {
        if (strcmp(arg, inject_names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    fprintf(stderr, "keel_sim: --inject wants early-ack, stale-read or vote-grant, got '%s'\n",
            arg);
    return false;
}

static bool parse_u64(const char *arg, const char *name, u64 max, u64 *out)
{
    char *end;
    unsigned long long v = strtoull(arg, &end, 0);
    if (*arg == '\0' || *end != '\0' || v > max) {
        fprintf(stderr, "keel_sim: %s wants a number up to %llu, got '%s'\n", name,
                (unsigned long long)max, arg);
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"seed", required_argument, NULL, 's'},
        {"seeds", required_argument, NULL, 'n'},
        {"first-seed", required_argument, NULL, 'f'},
        {"steps", required_argument, NULL, 'k'},
        {"nodes", required_argument, NULL, 'N'},
        {"groups", required_argument, NULL, 'G'},
        {"verbose", no_argument, NULL, 'v'},
        {"check-replay", no_argument, NULL, 'r'},
        {"keep-going", no_argument, NULL, 'g'},
        {"jobs", required_argument, NULL, 'j'},
        {"inject", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    sim_argv0 = argv[0];
    struct sim_options opt = {.steps = SIM_STEPS_DEFAULT};
    u64 seed = 0, seeds = 0, first = 1, v;
    u32 jobs = 1;
    bool have_seed = false, check_replay = false, keep_going = false, ok = true;
    int c;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        switch (c) {
        case 's':
            ok = parse_u64(optarg, "--seed", UINT64_MAX, &seed), have_seed = true;
            break;
        case 'n':
            ok = parse_u64(optarg, "--seeds", UINT64_MAX, &seeds);
            break;
        case 'f':
            ok = parse_u64(optarg, "--first-seed", UINT64_MAX, &first);
            break;
        case 'k':
            ok = parse_u64(optarg, "--steps", 100000000, &v), opt.steps = (u32)v;
            break;
        case 'N':
            ok = parse_u64(optarg, "--nodes", SIM_NODES_MAX, &v), opt.nodes = (u32)v;
            break;
        case 'G':
            ok = parse_u64(optarg, "--groups", SIM_GROUPS_MAX, &v), opt.groups = (u32)v;
            break;
        case 'v':
            opt.verbose = true;
            break;
        case 'r':
            check_replay = true;
            break;
        case 'g':
            keep_going = true;
            break;
        case 'j':
            ok = parse_u64(optarg, "--jobs", 256, &v) && v > 0, jobs = (u32)v;
            break;
        case 'i':
            ok = parse_inject(optarg, &opt.inject);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (!ok) return 2;
    }
    if (optind < argc || have_seed == (seeds != 0)) {
        fprintf(stderr, "keel_sim: give either --seed S or --seeds N\n");
        usage(stderr);
        return 2;
    }
    signal(SIGABRT, on_abort);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (have_seed) {
        opt.seed = seed;
        return run_one(&opt, check_replay);
    }
    return run_many(opt, first, seeds, jobs, keep_going);
}
