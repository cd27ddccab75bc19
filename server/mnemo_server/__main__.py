from mnemo_server.cli import main

main()
