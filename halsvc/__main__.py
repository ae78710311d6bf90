from halsvc.daemon import main

raise SystemExit(main())
