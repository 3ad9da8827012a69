#!/usr/bin/python3
"""pulp_mckp.py - solve a bench_mckp instance the way HAWQ-V3 does: PuLP + CBC.

Reads the text instance bench_mckp writes (bench/bench_mckp.c,
write_instance: "bitplan-mckp 1", then "G K", the K caps, and one line per
group: C followed by C times "obj cost_0 .. cost_{K-1}"), builds the binary
program

    minimise   sum_{g,c} o[g][c] x[g][c]
    subject to sum_c x[g][c] = 1                 for every group g
               sum_{g,c} a[k][g][c] x[g][c] <= B_k   for every budget k
               x binary

and solves it with CBC through PuLP at gapRel=0 (PULP_CBC_CMD, or COIN_CMD
on the system's cbc where PuLP's bundled binary is missing, as on Debian) (optionally under a time
limit).  It prints one line that bench_mckp parses:

    pulp objective OBJ seconds SECS status STATUS

where OBJ is recomputed from the chosen x by summing in group order (as
bitplan does), SECS is the wall-clock time of the CBC solve including
PuLP's model writing, and STATUS is "Optimal" or "TimeLimit" (or PuLP's
status name).  A second line reports whether the chosen assignment meets
every cap exactly, and by how much it breaks one if not.

usage: /usr/bin/python3 pulp_mckp.py INSTANCE [--time-limit SECONDS]
                                   [--solution FILE]
"""
import argparse
import sys
import time

import pulp


def read_instance(path):
    with open(path) as f:
        head = f.readline().split()
        if head != ["bitplan-mckp", "1"]:
            sys.exit("%s: not a bitplan-mckp 1 file" % path)
        n_groups, n_budgets = (int(t) for t in f.readline().split())
        caps = [float(t) for t in f.readline().split()]
        if len(caps) != n_budgets:
            sys.exit("%s: expected %d caps" % (path, n_budgets))
        groups = []  # per group: list of (obj, [costs])
        for g in range(n_groups):
            tok = f.readline().split()
            n_choices = int(tok[0])
            vals = [float(t) for t in tok[1:]]
            if len(vals) != n_choices * (1 + n_budgets):
                sys.exit("%s: group %d: wrong number of values" % (path, g))
            step = 1 + n_budgets
            groups.append([(vals[c * step], vals[c * step + 1:(c + 1) * step])
                           for c in range(n_choices)])
    return groups, caps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("instance")
    ap.add_argument("--time-limit", type=float, default=0,
                    help="seconds; 0 = none")
    ap.add_argument("--solution", metavar="FILE",
                    help="also write the chosen choice index of every group, "
                         "one per line")
    args = ap.parse_args()
    groups, caps = read_instance(args.instance)
    n_budgets = len(caps)

    t0 = time.perf_counter()
    prob = pulp.LpProblem("mckp", pulp.LpMinimize)
    x = [[pulp.LpVariable("x_%d_%d" % (g, c), cat="Binary")
          for c in range(len(ch))] for g, ch in enumerate(groups)]
    prob += pulp.lpSum(ch[c][0] * x[g][c]
                       for g, ch in enumerate(groups) for c in range(len(ch)))
    for g, ch in enumerate(groups):
        prob += pulp.lpSum(x[g]) == 1
    for k in range(n_budgets):
        prob += pulp.lpSum(ch[c][1][k] * x[g][c] for g, ch in enumerate(groups)
                           for c in range(len(ch))) <= caps[k]
    opts = {"msg": False, "gapRel": 0}
    if args.time_limit > 0:
        opts["timeLimit"] = args.time_limit
    # Debian's python3-pulp ships without PuLP's bundled CBC binary; COIN_CMD
    # drives the system one (coinor-cbc), the same solver.
    solver = pulp.PULP_CBC_CMD(**opts)
    if not solver.available():
        solver = pulp.COIN_CMD(**opts)
    if not solver.available():
        sys.exit("pulp_mckp: no CBC available to PuLP (install coinor-cbc)")
    prob.solve(solver)
    secs = time.perf_counter() - t0

    status = pulp.LpStatus[prob.status]
    # PuLP reports "Optimal" also when CBC stopped on the time limit with a
    # feasible solution; tell the two apart by the solver's own status.
    if status == "Optimal" and args.time_limit > 0 and secs >= args.time_limit:
        status = "TimeLimit"
    choice = []
    for g, ch in enumerate(groups):
        vals = [x[g][c].value() or 0.0 for c in range(len(ch))]
        choice.append(max(range(len(ch)), key=lambda c: vals[c]))
    obj = 0.0
    totals = [0.0] * n_budgets
    for g, ch in enumerate(groups):
        obj += ch[choice[g]][0]
        for k in range(n_budgets):
            totals[k] += ch[choice[g]][1][k]
    if args.solution:
        with open(args.solution, "w") as f:
            f.write("".join("%d\n" % c for c in choice))
    print("pulp objective %.17g seconds %.6f status %s" % (obj, secs, status))
    over = [(totals[k] - caps[k]) / abs(caps[k]) if caps[k] else totals[k]
            for k in range(n_budgets)]
    print("pulp caps met exactly: %s; worst relative excess %.3g"
          % ("yes" if all(t <= c for t, c in zip(totals, caps)) else "no",
             max(over)))


if __name__ == "__main__":
    main()
