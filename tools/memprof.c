/* memprof.c - the `memprof` command: run, report, json.
 *
 * What this owns: argument parsing (every flag is documented in the usage text next to the code
 * that parses it), running a program under libmemprof.so, exit statuses and the one-line error
 * and warning messages. Everything else is in report/: model.h replays a dump, emit.h prints it.
 *
 * Exit statuses: 0 ok; 2 usage error, unreadable or corrupt dump (one line on stderr);
 * `memprof run` exits with the program's own status (128 + signal if it was killed).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "emit.h"
#include "model.h"
#include "reader.h"
#include "symbolize.h"
#include "version.h"

#define EXIT_USAGE 2

static const char usage_main[] =
    "usage: memprof COMMAND [OPTIONS] ...\n"
    "\n"
    "A memory profiler and leak detector for Python programs and the native code under them.\n"
    "\n"
    "commands:\n"
    "  run [OPTIONS] -- CMD [ARGS...]   run CMD under the profiler, then print its report\n"
    "  report [OPTIONS] DUMP            readable report of a dump: summary, per-line table,\n"
    "                                   leaks, peak\n"
    "  json [OPTIONS] DUMP              the JSON report of a dump (docs/JSON.md)\n"
    "\n"
    "options:\n"
    "  -h, --help      this help; `memprof COMMAND --help` describes a command\n"
    "  --version       print the version and the dump format version\n"
    "\n"
    "Exit status: 0 ok, 2 bad usage or an unreadable or corrupt dump; `run` exits with the\n"
    "status of CMD.\n";

static const char usage_run[] =
    "usage: memprof run [--native] [-o FILE] [--quiet] -- CMD [ARGS...]\n"
    "\n"
    "Runs CMD with libmemprof.so preloaded, then prints the report of its dump as `memprof\n"
    "report` does by default: the summary, then the per-line table of a Python program or the\n"
    "top leaks of any other.\n"
    "Exits with the status of CMD (128 + N if signal N killed it).\n"
    "\n"
    "  --native            record native stacks (MEMPROF_NATIVE=1): slower, names C functions\n"
    "  -o, --output FILE   write the dump to FILE (%p becomes the pid);\n"
    "                      default memprof-<CMD>.<pid>.dump in the current directory;\n"
    "                      /dev/null or a FIFO is written as it is, with no report\n"
    "  -q, --quiet         do not print the report; the dump is still written\n"
    "  -h, --help          this help\n";

static const char usage_report[] =
    "usage: memprof report [--summary] [--lines] [--leaks] [--peak] [--top N] [--at WHEN]\n"
    "                      [--functions N] [--file SUBSTR] [--function NAME] [--precision N] "
    "DUMP\n"
    "\n"
    "Prints a readable report of DUMP (- reads standard input). Without a section flag:\n"
    "--summary and --lines for a dump with Python stacks, --summary and --leaks otherwise.\n"
    "\n"
    "  --summary       totals: allocations, frees, peak heap, leaked bytes, RSS peak\n"
    "  --lines         per-line table of the Python functions that held the most memory at\n"
    "                  the peak, in memory_profiler's layout (its header says what each\n"
    "                  column means here)\n"
    "  --leaks         what was still live at the end, by Python line and by stack\n"
    "  --peak          what was live when the heap was largest, by Python line and by stack\n"
    "  --top N         stacks and lines shown per list (default 10; 0 shows all)\n"
    "  --functions N   functions in the per-line table (default 5, or all that match\n"
    "                  --file/--function; 0 shows all)\n"
    "  --file SUBSTR   per-line table: only functions whose file name contains SUBSTR\n"
    "  --function NAME per-line table: only functions whose qualified name or name is NAME\n"
    "  --precision N   decimals of the MiB columns, 1 to 6 (default 3, as memory_profiler)\n"
    "  --at WHEN       where leaks are measured: main_end (end of the Python main code, the\n"
    "                  default when recorded) or exit (process exit, after finalization)\n"
    "  -h, --help      this help\n";

static const char usage_json[] =
    "usage: memprof json [-o FILE] [--at WHEN] DUMP\n"
    "\n"
    "Writes the JSON report of DUMP (- reads standard input; schema: docs/JSON.md) to standard\n"
    "output or FILE.\n"
    "\n"
    "  -o, --output FILE   write to FILE instead of standard output\n"
    "  --at WHEN           where leaks are measured: main_end (default when recorded) or exit\n"
    "  -h, --help          this help\n";

/* ---- messages ------------------------------------------------------------------------------- */

static int
usage_error(const char *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "memprof%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see memprof %s%s--help)\n", cmd ? cmd : "", cmd ? " " : "");
    return EXIT_USAGE;
}

static int
input_error(const char *file, const mp_err_t *err) {
    char line[400];
    fprintf(stderr, "memprof: %s: %s\n", file, mp_err_format(err, line, sizeof line));
    return EXIT_USAGE;
}

static void
warn_incomplete(const char *file, const mp_model_t *m) {
    if (m->incomplete)
        fprintf(stderr, "memprof: warning: %s: dump is incomplete (%s)\n", file, m->incomplete_why);
    if (m->summary.lost_events)
        fprintf(stderr, "memprof: warning: %s: %llu events were lost; the numbers are incomplete\n",
                file, (unsigned long long)m->summary.lost_events);
}

/* ---- argument helpers ----------------------------------------------------------------------- */

typedef struct args_s {
    int argc;
    char **argv;
    int i;           /* next argument */
    const char *cmd; /* subcommand, for messages */
} args_t;

/* Is argv[i] the flag `name` (or `alt`), taking a value as "--name V" or "--name=V"? Returns 1
 * with *val set, 0 if it is another argument, -1 after printing a "missing value" error. */
static int
flag_value(args_t *a, const char *name, const char *alt, const char **val) {
    const char *arg = a->argv[a->i];
    const char *names[2] = {name, alt};
    for (int k = 0; k < 2; k++) {
        if (!names[k]) continue;
        size_t n = strlen(names[k]);
        if (strncmp(arg, names[k], n) != 0) continue;
        if (arg[n] == '=' && names[k][1] == '-') {
            *val = arg + n + 1;
            a->i++;
            return 1;
        }
        if (arg[n] != 0) continue;
        if (a->i + 1 >= a->argc) {
            usage_error(a->cmd, "%s needs a value", names[k]);
            return -1;
        }
        *val = a->argv[a->i + 1];
        a->i += 2;
        return 1;
    }
    return 0;
}

static bool
is_flag(const char *arg, const char *name, const char *alt) {
    return strcmp(arg, name) == 0 || (alt && strcmp(arg, alt) == 0);
}

static int
parse_at(const args_t *a, const char *v, mp_at_t *at) {
    if (strcmp(v, "main_end") == 0)
        *at = mp_at_main_end;
    else if (strcmp(v, "exit") == 0)
        *at = mp_at_exit;
    else
        return usage_error(a->cmd, "bad --at value '%s': expected main_end or exit", v);
    return 0;
}

/* A count for flag (--top, --functions, --precision) in [lo, hi]. */
static int
parse_count(const args_t *a, const char *flag, const char *v, unsigned long long lo,
            unsigned long long hi, size_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long n = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
    if (!end || *end || errno || n < lo || n > hi) {
        fprintf(stderr,
                "memprof %s: bad %s value '%s': expected a number from %llu to %llu (see "
                "memprof %s --help)\n",
                a->cmd, flag, v, lo, hi, a->cmd);
        return EXIT_USAGE;
    }
    *out = (size_t)n;
    return 0;
}

/* ---- report and json ------------------------------------------------------------------------ */

/* Load DUMP ("-" is standard input), printing the error or the warnings. Returns 0 or 2. */
static int
load_dump(const char *file, const mp_model_opts_t *mo, mp_model_t **m) {
    mp_err_t err = {0};
    bool is_stdin = strcmp(file, "-") == 0;
    if (mp_model_load(m, is_stdin ? "/dev/stdin" : file, mo, &err) < 0)
        return input_error(is_stdin ? "<stdin>" : file, &err);
    warn_incomplete(is_stdin ? "<stdin>" : file, *m);
    return 0;
}

/* Print the text report of file. With no section chosen in *to: the summary, then the per-line
 * table of a dump with Python code objects, else the leaks. */
static int
print_report(const char *file, mp_model_opts_t mo, mp_text_opts_t to) {
    mp_err_t err = {0};
    mp_model_t *m = NULL;
    bool automatic = !to.summary && !to.lines && !to.leaks && !to.peak;
    mo.lines = to.lines || automatic;
    if (load_dump(file, &mo, &m) != 0) return EXIT_USAGE;
    if (automatic) {
        to.summary = true;
        to.lines = m->npycodes > 0;
        to.leaks = !to.lines;
    }
    mp_sym_t *sym = mp_sym_new(m, stderr);
    int rc = mp_emit_text(m, sym, &to, stdout, &err);
    mp_sym_free(sym);
    mp_model_free(m);
    if (rc < 0) return input_error("<stdout>", &err);
    return 0;
}

/* What every dump command accepts besides its options: the DUMP (once), "--" (what follows is
 * a file name even if it starts with '-') and -h/--help. Returns 1 if argv[i] was one of those
 * (consumed), 0 if not, 2 after printing usage (the command then exits 0), -1 after a usage
 * error. */
static int
dump_arg(args_t *a, const char **dump, bool *only_files, const char *usage) {
    const char *arg = a->argv[a->i];
    if (*only_files || arg[0] != '-' || strcmp(arg, "-") == 0) {
        if (*dump) {
            usage_error(a->cmd, "unexpected argument '%s'", arg);
            return -1;
        }
        *dump = arg;
        a->i++;
        return 1;
    }
    if (strcmp(arg, "--") == 0) {
        *only_files = true;
        a->i++;
        return 1;
    }
    if (is_flag(arg, "-h", "--help")) {
        fputs(usage, stdout);
        return 2;
    }
    return 0;
}

static int
cmd_report(args_t *a) {
    mp_model_opts_t mo = {.at = mp_at_default};
    mp_text_opts_t to = {.top = 10, .functions = 5};
    const char *dump = NULL, *v = NULL;
    bool only_files = false, functions_set = false;
    int rc;
    while (a->i < a->argc) {
        const char *arg = a->argv[a->i];
        if ((rc = dump_arg(a, &dump, &only_files, usage_report)) != 0) {
            if (rc != 1) return rc < 0 ? EXIT_USAGE : 0;
        } else if (is_flag(arg, "--summary", NULL)) {
            to.summary = true;
            a->i++;
        } else if (is_flag(arg, "--leaks", NULL)) {
            to.leaks = true;
            a->i++;
        } else if (is_flag(arg, "--peak", NULL)) {
            to.peak = true;
            a->i++;
        } else if (is_flag(arg, "--lines", NULL)) {
            to.lines = true;
            a->i++;
        } else if ((rc = flag_value(a, "--top", NULL, &v)) != 0) {
            if (rc < 0 || parse_count(a, "--top", v, 0, 1000000000ull, &to.top) != 0)
                return EXIT_USAGE;
        } else if ((rc = flag_value(a, "--functions", NULL, &v)) != 0) {
            if (rc < 0 || parse_count(a, "--functions", v, 0, 1000000000ull, &to.functions) != 0)
                return EXIT_USAGE;
            functions_set = true;
        } else if ((rc = flag_value(a, "--precision", NULL, &v)) != 0) {
            size_t p = 0;
            if (rc < 0 || parse_count(a, "--precision", v, 1, 6, &p) != 0) return EXIT_USAGE;
            to.precision = (int)p;
        } else if ((rc = flag_value(a, "--file", NULL, &v)) != 0) {
            if (rc < 0) return EXIT_USAGE;
            to.file = v;
        } else if ((rc = flag_value(a, "--function", NULL, &v)) != 0) {
            if (rc < 0) return EXIT_USAGE;
            to.function = v;
        } else if ((rc = flag_value(a, "--at", NULL, &v)) != 0) {
            if (rc < 0 || parse_at(a, v, &mo.at) != 0) return EXIT_USAGE;
        } else {
            return usage_error(a->cmd, "unknown option '%s'", arg);
        }
    }
    if (!dump) return usage_error(a->cmd, "%s", "missing DUMP");
    /* A filter names the functions wanted: show all that match unless told otherwise. */
    if ((to.file || to.function) && !functions_set) to.functions = 0;
    return print_report(dump, mo, to);
}

static int
cmd_json(args_t *a) {
    mp_model_opts_t mo = {.at = mp_at_default, .lines = true};
    const char *dump = NULL, *out = NULL, *v = NULL;
    bool only_files = false;
    int rc;
    while (a->i < a->argc) {
        const char *arg = a->argv[a->i];
        if ((rc = dump_arg(a, &dump, &only_files, usage_json)) != 0) {
            if (rc != 1) return rc < 0 ? EXIT_USAGE : 0;
        } else if ((rc = flag_value(a, "--output", "-o", &v)) != 0) {
            if (rc < 0) return EXIT_USAGE;
            out = v;
        } else if ((rc = flag_value(a, "--at", NULL, &v)) != 0) {
            if (rc < 0 || parse_at(a, v, &mo.at) != 0) return EXIT_USAGE;
        } else {
            return usage_error(a->cmd, "unknown option '%s'", arg);
        }
    }
    if (!dump) return usage_error(a->cmd, "%s", "missing DUMP");

    mp_err_t err = {0};
    mp_model_t *m = NULL;
    if (load_dump(dump, &mo, &m) != 0) return EXIT_USAGE;
    FILE *f = stdout;
    if (out && strcmp(out, "-") != 0 && !(f = fopen(out, "w"))) {
        fprintf(stderr, "memprof: %s: cannot write (%s)\n", out, strerror(errno));
        mp_model_free(m);
        return EXIT_USAGE;
    }
    mp_sym_t *sym = mp_sym_new(m, stderr);
    rc = mp_emit_json(m, sym, f, &err);
    mp_sym_free(sym);
    mp_model_free(m);
    if (f != stdout && fclose(f) != 0 && rc == 0)
        rc = mp_err_set(&err, MP_EIO, 0, NULL, "%s", strerror(errno));
    if (rc < 0) {
        if (f != stdout) unlink(out);
        return input_error(f != stdout ? out : "<stdout>", &err);
    }
    return 0;
}

/* ---- run ------------------------------------------------------------------------------------ */

/* libmemprof.so next to this executable, else in ../lib. Returns 0 with path filled, or -1. */
static int
find_library(char *path, size_t size) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return -1;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash) return -1;
    *slash = 0;
    const char *candidates[] = {"%s/libmemprof.so", "%s/../lib/libmemprof.so"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char p[PATH_MAX + 32];
        snprintf(p, sizeof p, candidates[i], self);
        char *real = realpath(p, NULL);
        if (!real) continue;
        bool ok = access(real, R_OK) == 0 && strlen(real) < size;
        if (ok) snprintf(path, size, "%s", real);
        free(real);
        if (ok) return 0;
    }
    return -1;
}

/* template with every "%p" replaced by pid. Returns a malloc'd string or NULL. */
static char *
expand_pid(const char *tmpl, pid_t pid) {
    char num[24];
    int nl = snprintf(num, sizeof num, "%ld", (long)pid);
    size_t len = strlen(tmpl), cap = len + 1;
    for (const char *p = tmpl; (p = strstr(p, "%p")); p += 2) cap += (size_t)nl;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    for (const char *p = tmpl; *p;) {
        if (p[0] == '%' && p[1] == 'p') {
            memcpy(o, num, (size_t)nl);
            o += nl;
            p += 2;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

static int
cmd_run(args_t *a) {
    bool native = false, quiet = false;
    const char *output = NULL, *v = NULL;
    int rc;
    while (a->i < a->argc) {
        const char *arg = a->argv[a->i];
        if (strcmp(arg, "--") == 0) {
            a->i++;
            break;
        } else if (arg[0] != '-') {
            break; /* the command starts here */
        } else if (is_flag(arg, "-h", "--help")) {
            fputs(usage_run, stdout);
            return 0;
        } else if (is_flag(arg, "--native", NULL)) {
            native = true;
            a->i++;
        } else if (is_flag(arg, "--quiet", "-q")) {
            quiet = true;
            a->i++;
        } else if ((rc = flag_value(a, "--output", "-o", &v)) != 0) {
            if (rc < 0) return EXIT_USAGE;
            if (!v[0]) return usage_error(a->cmd, "%s", "empty --output");
            output = v;
        } else {
            return usage_error(a->cmd, "unknown option '%s'", arg);
        }
    }
    if (a->i >= a->argc) return usage_error(a->cmd, "%s", "missing CMD to run");
    char **cmd = a->argv + a->i;

    char lib[PATH_MAX];
    if (find_library(lib, sizeof lib) < 0) {
        fprintf(stderr, "memprof run: cannot find libmemprof.so next to the memprof executable "
                        "or in ../lib\n");
        return EXIT_USAGE;
    }
    char tmpl[PATH_MAX];
    if (output) {
        snprintf(tmpl, sizeof tmpl, "%s", output);
    } else {
        const char *base = strrchr(cmd[0], '/');
        base = base && base[1] ? base + 1 : cmd[0];
        snprintf(tmpl, sizeof tmpl, "memprof-%s.%%p.dump", base);
    }

    /* The environment is set here, before fork, so the child only has to exec. */
    const char *old = getenv("LD_PRELOAD");
    size_t plen = strlen(lib) + (old ? strlen(old) + 1 : 0) + 1;
    char *preload = malloc(plen);
    if (!preload) return usage_error(a->cmd, "%s", "out of memory");
    snprintf(preload, plen, "%s%s%s", lib, old && old[0] ? ":" : "", old ? old : "");
    setenv("LD_PRELOAD", preload, 1);
    free(preload);
    setenv("MEMPROF_OUTPUT", tmpl, 1);
    setenv("MEMPROF_QUIET", "1", 1); /* we name the dump ourselves */
    if (native) setenv("MEMPROF_NATIVE", "1", 1);

    /* Like system(3): ^C and ^\ go to the program; we stay to report on it. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "memprof run: fork: %s\n", strerror(errno));
        return EXIT_USAGE;
    }
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        execvp(cmd[0], cmd);
        fprintf(stderr, "memprof run: cannot run %s: %s\n", cmd[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "memprof run: waitpid: %s\n", strerror(errno));
            return EXIT_USAGE;
        }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    int code = WIFEXITED(status)     ? WEXITSTATUS(status)
               : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                     : EXIT_USAGE;

    char *dump = expand_pid(tmpl, pid);
    if (!dump) return code;
    struct stat st;
    if (stat(dump, &st) != 0) {
        /* exec failed (already said) or the library did not load / switched itself off. */
        if (!(WIFEXITED(status) && (code == 126 || code == 127)))
            fprintf(stderr, "memprof: warning: %s was not written (the library did not load)\n",
                    dump);
        free(dump);
        return code;
    }
    if (!quiet && !S_ISREG(st.st_mode)) {
        /* /dev/null or a FIFO: what went there cannot be read back. */
        fprintf(stderr, "memprof: the dump went to %s, which is not a regular file: no report\n",
                dump);
    } else if (!quiet) {
        mp_model_opts_t mo = {.at = mp_at_default};
        mp_text_opts_t to = {.top = 10, .functions = 5}; /* the default sections */
        fflush(stdout);
        print_report(dump, mo, to);
        fprintf(stderr, "memprof: dump written to %s (`memprof report %s` for more)\n", dump, dump);
    }
    free(dump);
    return code;
}

/* ---- main ----------------------------------------------------------------------------------- */

int
main(int argc, char **argv) {
    if (argc < 2) return usage_error(NULL, "%s", "missing COMMAND");
    args_t a = {argc, argv, 2, argv[1]};
    const char *cmd = argv[1];
    if (is_flag(cmd, "-h", "--help") || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("memprof %s (dump format %d.%d)\n", MP_VERSION_STRING, MP_FORMAT_MAJOR,
               MP_FORMAT_MINOR);
        return 0;
    }
    if (strcmp(cmd, "run") == 0) return cmd_run(&a);
    if (strcmp(cmd, "report") == 0) return cmd_report(&a);
    if (strcmp(cmd, "json") == 0) return cmd_json(&a);
    a.cmd = NULL;
    return usage_error(NULL, cmd[0] == '-' ? "unknown option '%s'" : "unknown command '%s'", cmd);
}
