"""The paper's table: MOGAQNN beside FP32, uniform QAT and random search, per CNN and dataset.

``python benchmarks/paper_table.py --profile standard`` (three seeds, converged FP32 budgets,
16 x 8 evaluations per search; plan.py has the budgets and the estimated hours per cell):

    python benchmarks/paper_table.py --profile standard --seeds 0,1,2 --workers 2 --plan
    python benchmarks/paper_table.py --profile standard --seeds 0,1,2 --workers 2
    python benchmarks/paper_table.py --profile standard --cells lenet5:mnist5k --workers 2

Per (cell, seed) it runs four units (``plan.ARMS``), each written as one JSON under
``benchmarks/results/paper_table_standard/<dataset>-<model>/s<seed>-<arm>.json`` as soon as
it exists (rerunning the command skips finished units; a unit of another budget is redone):
``limited`` (MOGAQNN, size limit FP32 size / 8), ``unlimited`` (MOGAQNN, no limit),
``random`` (random sampling, the limit, the same evaluations) and ``uniform`` (8/4/2-bit
QAT from the FP32 base). Each search trains both FP32 baselines (plain and distilled). Once
per cell (first seed): ``convergence`` (the FP32 recipe at twice the epochs: converged when
val accuracy moves < 0.5 pp) and, for LeNet-5 and ResNet-20 on MNIST-5k, ``fidelity``
(Kendall's tau of search val accuracy vs final test accuracy over 20 individuals of the
limited run's last front and population, benchmarks/fitness_fidelity.py's
``fidelity_from_run``). The units are aggregated (benchmarks/_evidence.py: mean +- std,
paired 95% t-intervals, the claim at 4x and 8x, hypervolume and evaluations to reach random
search's) into ``benchmarks/results/paper_table_standard.{json,md,png}``; the .md is the
README's Evidence section. ``--profile standard-smoke`` runs the same machinery on a budget
of minutes and writes under runs/ (a check, not a result). The test split is read once per
final model; nothing here is chosen by test accuracy.

- ``plan``: the cells, the arms, the budgets, the estimated hours, where units lie;
- ``units``: running a (cell, seed)'s units (every model trained by ``mogaqnn.Recipe``);
- ``aggregate``: the units' figures per cell and over cells (JSON in, no training);
- ``render``: the markdown and the claim plot;
- ``cli``: the command line.
"""
