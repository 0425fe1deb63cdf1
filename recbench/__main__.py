from recbench.cli.app import main

main()
