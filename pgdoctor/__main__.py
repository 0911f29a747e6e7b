from pgdoctor.cli import main

main()
