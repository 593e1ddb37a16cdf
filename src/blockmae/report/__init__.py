"""What the study's rows say: the findings and their verdicts (the paper's claims as rules over tidy rows), the
interfaces and gap verdicts, and the analysis report (tables and figures in one HTML page, `blockmae analyze`)."""
