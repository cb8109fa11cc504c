from octomon.cli import main

main()
