"""Audit a collection before trusting it: exact and near-duplicates, likely label errors, outliers, balance.

    result = audit(tl.load_dataset("photos/"), out="audit/")   # audit.json, audit.csv, audit.html
    result.summary(), result.findings, result.fix_paths()

Modules load on first use (``config`` loads no torch, for the CLI).
"""

from .._lazy import attach

from .config import AuditConfig

_EXPORTS = {
    'audit': '.core',
    'audit_features': '.core',
    'latest_audit': '.core',
    'Pair': '.duplicates',
    'copies_in': '.duplicates',
    'find_duplicates': '.duplicates',
    'find_label_issues': '.labels',
    'low_confidence_issues': '.labels',
    'neighbour_probabilities': '.labels',
    'out_of_fold_probabilities': '.labels',
    'outlier_scores': '.outliers',
    'AuditResult': '.result',
    'Finding': '.result',
    'read_paths': '.result',
    'write_paths': '.result',
}
__getattr__, __dir__ = attach(__name__, _EXPORTS)
__all__ = ['AuditConfig', 'AuditResult', 'Finding', 'Pair', 'audit', 'audit_features', 'copies_in', 'find_duplicates', 'find_label_issues',
           'latest_audit', 'low_confidence_issues', 'neighbour_probabilities', 'out_of_fold_probabilities', 'outlier_scores', 'read_paths', 'write_paths']
