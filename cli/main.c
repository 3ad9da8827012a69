/* main.c - the bitplan command: dispatches to one file per subcommand. */
#include "config.h"
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <string.h>

int cmd_inspect(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_sensitivity(int argc, char **argv);
int cmd_solve(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_profile(int argc, char **argv);

static const bp_cmd commands[] = {
    {"inspect", cmd_inspect, "layers, shapes, parameters and MACs of a model"},
    {"eval", cmd_eval, "float accuracy and outputs of a model on data"},
    {"sensitivity", cmd_sensitivity, "per-layer Hessian traces, top eigenvalues, perturbations"},
    {"solve", cmd_solve, "best bit-widths per layer under size/latency/BOPs budgets"},
    {"sweep", cmd_sweep, "Pareto front of sensitivity against size, latency or BOPs"},
    {"run", cmd_run, "run a plan in the integer-only executor and measure it"},
    {"profile", cmd_profile, "measure this machine's integer kernels into a profile"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: bitplan COMMAND [options]\n\n"
               "Hessian-aware mixed-precision planning for neural networks.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'bitplan COMMAND --help' describes each command.\n"
               "exit codes: 0 ok, 1 a check failed (budget, accuracy), "
               "2 bad input, 3 internal error\n");
}

/* Interrupted runs must not leave temporary outputs behind. */
static void on_signal(int sig)
{
    bp_outfile_cleanup_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return BP_EXIT_INPUT;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return BP_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("bitplan %s\n", PACKAGE_VERSION);
        return BP_EXIT_OK;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    signal(SIGPIPE, on_signal);
    opterr = 0; /* the subcommands report bad options in one line */
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            int rc = commands[i].run(argc - 1, argv + 1);
            /* a full disk under stdout loses the --json result: no success */
            if (fflush(stdout) || ferror(stdout)) {
                cli_error("stdout: cannot write: %s", strerror(errno));
                return rc ? rc : BP_EXIT_INPUT;
            }
            return rc;
        }
    cli_error("unknown command '%s' (see 'bitplan --help')", argv[1]);
    return BP_EXIT_INPUT;
}
