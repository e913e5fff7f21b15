"""Evaluation: teacher-forced scoring, traces and SCRs, event-locked responses, the held-out report, plots."""
