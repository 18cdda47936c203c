"""Fire drills: prove that a fault is detected and that the pager really rings.

``run.Drill`` runs one through the real detection and alert path on a drill copy of a
destination; ``store`` keeps the reports in ``drills``; ``report`` renders them."""

from observatory.drills.run import KINDS, PREFIX, Drill, DrillReport
from observatory.drills.store import DrillDue, last_passed, save_drill

__all__ = ["KINDS", "PREFIX", "Drill", "DrillDue", "DrillReport", "last_passed", "save_drill"]
