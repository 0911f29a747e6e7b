"""One module per command: thin typer functions that wire collect -> analyze -> render."""
