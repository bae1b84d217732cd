"""blindlca: blind localization and clustering of anomalies in textures.

The maths of Ardelean & Weyrich (CVPRW 2024) as pure, typed functions; the Snakemake
workflow at the repository root wires them into a DAG.
"""

__version__ = "0.1.0"
