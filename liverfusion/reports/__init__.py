"""What a person reads after a run: `report.html` (`page`, its figures in `figures`) and `liverfusion view`
(`viewer`)."""
