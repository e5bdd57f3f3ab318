"""What a paper shows: Altair charts, the HTML report, its summary text and table exports."""
